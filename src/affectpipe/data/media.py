"""Audio and video I/O, for the datasets' clips and any user video: PyAV for containers,
soundfile for WAV.

Decoding problems (no audio track, an empty WAV, a container without its index, samples that
are not finite) become `InputProblem`s naming the file, so the caller can stop or record a
skip; nothing here guesses. A file cut short whose remaining part decodes (a WAV whose header
declares more data than it holds, an mp4 with its index in front) keeps what is there, with a
`note` saying what the header declares and what was decoded. Frames are turned upright by the
stream's display matrix (phones store portrait video sideways) and shrunk at decode time by one
rule (`output_size`, on the displayed size), so preprocessing and inference see the same
pixels. A user's video can be long, have a variable frame rate, no audio, or timestamps that do
not start at 0: `FrameSampler` picks frames on the stream's own clock and yields them as it
decodes, so only the frames a caller still needs are in memory. Encoding is
single-threaded so the synthetic datasets come out byte-identical.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
import soundfile as sf
import soxr
from PIL import Image

from affectpipe.problems import InputProblem

WAV_EXTS: tuple[str, ...] = (".wav",)
VIDEO_EXTS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".flv", ".webm", ".mkv", ".m4v")
# Decoded media may fall this far short of the duration the file declares (codec priming, the
# last frame's length) before it is called truncated.
TRUNCATION_TOLERANCE_S = 0.25
# Float audio may exceed full scale (1.0) a little; a sample beyond +40 dBFS is no recording.
MAX_ABS_SAMPLE = 100.0
UNKNOWN_RIFF_SIZE = 0xFFFFFFFF  # a streaming writer's data size: "not known", not a length


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples at `sample_rate`, with the facts a report needs about the source."""

    samples: np.ndarray  # (N,) float32
    sample_rate: int
    source_rate: int  # the rate the file was stored at
    duration_s: float  # duration of the source, before resampling
    note: str | None = None  # truncated: what the header declares, what was decoded and kept

    @property
    def loudness_db(self) -> float:
        """RMS level in dBFS (full-scale sine = -3 dB)."""
        return rms_db(self.samples)


def rms_db(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def truncation_note(declared_s: float | None, present_s: float, what: str) -> str | None:
    """The note of a file that decodes to more than `TRUNCATION_TOLERANCE_S` less `what` than it
    declares (its remaining part is kept); None when it declares nothing or holds it all."""
    if declared_s is None or declared_s - present_s <= TRUNCATION_TOLERANCE_S:
        return None
    return (
        f"truncated: header declares {declared_s:.2f} s, {present_s:.2f} s of {what} present (kept)"
    )


def check_samples(path: Path, x: np.ndarray, at_s: float = 0.0) -> None:
    """Refuse samples no recording holds: inf/NaN, or beyond `MAX_ABS_SAMPLE` (`at_s`: where
    `x` starts in the recording, for a block of a longer one)."""
    if bad := int(np.count_nonzero(~np.isfinite(x))):
        where = f" in the block from {at_s:.2f} s" if at_s else ""
        raise InputProblem(path, f"{bad} of {x.size} audio samples{where} are not finite (inf/NaN)")
    if x.size and (peak := float(np.max(np.abs(x)))) > MAX_ABS_SAMPLE:
        raise InputProblem(
            path, f"audio sample of magnitude {peak:.3g}, beyond {MAX_ABS_SAMPLE:g} (full scale 1)"
        )


def _finish_audio(
    path: Path, mono: np.ndarray, rate: int, target_rate: int, declared_s: float | None
) -> Audio:
    """Check and resample; whether the samples hold speech is `data.speech`'s question."""
    if mono.size == 0:
        raise InputProblem(path, "empty audio (0 samples)")
    check_samples(path, mono)
    duration = mono.size / rate
    out = mono if rate == target_rate else soxr.resample(mono, rate, target_rate, quality="HQ")
    note = truncation_note(declared_s, duration, "audio")
    return Audio(np.asarray(out, dtype=np.float32), target_rate, rate, duration, note)


def wav_declared_s(path: Path) -> float | None:
    """Seconds of audio a WAV's RIFF header declares (its `data` chunk's size over the `fmt `
    chunk's byte rate), to compare with what decodes; None when it declares none: not
    RIFF/WAVE, no `fmt ` before `data`, or the streaming writers' unknown size."""
    byte_rate = 0
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        while len(chunk := f.read(8)) == 8:
            tag, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            start = f.tell()
            if tag == b"data":
                ok = byte_rate and size != UNKNOWN_RIFF_SIZE
                return size / byte_rate if ok else None
            if tag == b"fmt " and size >= 12:
                byte_rate = struct.unpack("<I", f.read(12)[8:12])[0]
            f.seek(start + size + (size & 1))  # chunks are padded to even sizes
    return None


def read_wav(path: Path, target_rate: int) -> Audio:
    """Read a WAV file as mono float32 resampled to `target_rate` (soxr)."""
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise InputProblem(path, f"unreadable WAV ({e})") from e
    return _finish_audio(path, data.mean(axis=1), rate, target_rate, wav_declared_s(path))


def read_track(path: Path, target_rate: int) -> Audio:
    """Decode the first audio track of a video container as mono float32 at `target_rate`
    (all of `AudioTrack` at once)."""
    track = AudioTrack(path, target_rate, TRACK_BLOCK_SAMPLES)
    samples = np.concatenate(list(track))
    duration = track.n_source / track.source_rate
    return Audio(samples, target_rate, track.source_rate, duration, track.note)


def _decoded(c: av.container.InputContainer, stream: av.stream.Stream) -> Iterator[av.frame.Frame]:
    """The stream's frames. A packet the demuxer marks corrupt (read short: a truncated file's
    last) is left out, as decoders refuse part of a frame; the duration check says what is lost."""
    for packet in c.demux(stream):
        if not packet.is_corrupt:
            yield from packet.decode()


def _declared_s(stream: av.stream.Stream) -> float | None:
    """The duration the container declares for `stream`; None when it stores none (FLV)."""
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def audio_declared_s(path: Path) -> float | None:
    """Seconds a container declares for its first audio stream (the stream's own duration, else
    the container's), read from the header without decoding; None when it has no audio stream
    or declares no duration. An unreadable container is an `InputProblem`."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                return None
            declared = _declared_s(c.streams.audio[0])
            if declared is None and c.duration is not None:
                declared = c.duration / av.time_base
            return declared
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise InputProblem(path, f"not a readable container ({type(e).__name__}: {e})") from e


@dataclass(frozen=True)
class StreamDigest:
    """A video stream as stored: equal digests mean the same coded pictures (the codec's setup
    and every packet, byte for byte), so the same decoded frames."""

    codec: str
    width: int
    height: int
    packets: int
    sha256: str  # over the codec's extradata (H.264's SPS/PPS), then each packet's bytes


def video_stream_digest(path: Path) -> StreamDigest:
    """Digest the first video stream by demuxing only (no decoding: a fraction of a decode's
    cost), to tell a remux of a video from a re-encoding. Timestamps are left out: a remux may
    change the container's time base, never the frames. No video stream, or a container that
    does not demux, is an `InputProblem`."""
    h = hashlib.sha256()
    n = 0
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise InputProblem(path, "no video track in the container")
            stream = c.streams.video[0]
            ctx = stream.codec_context
            h.update(ctx.extradata or b"")
            for packet in c.demux(stream):
                if packet.size:  # the demuxer's closing packet is empty
                    h.update(bytes(packet))
                    n += 1
            return StreamDigest(ctx.name, int(ctx.width), int(ctx.height), n, h.hexdigest())
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise InputProblem(path, f"video stream does not demux ({type(e).__name__}: {e})") from e


def has_audio_track(path: Path) -> bool:
    try:
        with av.open(str(path)) as c:
            return bool(c.streams.audio)
    except av.error.FFmpegError:
        return False


def write_wav(path: Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, subtype=subtype)


def write_float_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Mono IEEE-float WAV, written by hand: libsndfile stamps float WAVs with the time (PEAK
    chunk), which would make identical audio differ byte for byte between runs."""
    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)  # IEEE float, mono, 32 bit
    fact = struct.pack("<I", len(samples))
    chunks = [(b"fmt ", fmt), (b"fact", fact), (b"data", data)]
    body = b"WAVE" + b"".join(tag + struct.pack("<I", len(x)) + x for tag, x in chunks)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video, before decoding it."""

    path: str
    duration_s: float  # container or stream duration; 0.0 when neither is stored
    fps: float  # average frame rate of the video stream
    width: int  # as displayed: swapped from the stored size for a quarter turn
    height: int
    has_audio: bool
    rotation: int = 0  # degrees counter-clockwise the display matrix turns the stored frames


@dataclass(frozen=True)
class SampledFrames:
    """Frames picked at a fixed rate: RGB uint8 (T, H, W, 3) and their times in seconds."""

    images: np.ndarray  # (T, H, W, 3) uint8
    times: np.ndarray  # (T,) float64, seconds from the first frame
    n_decoded: int  # frames in the stream (all decoded to find the sampled ones)
    last_time: float  # time of the last decoded frame


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTS


def list_videos(folder: Path) -> list[Path]:
    """Video files under `folder` (recursive), sorted, by extension (case-insensitive)."""
    return sorted(p for p in folder.rglob("*") if is_video(p))


def probe(path: Path) -> VideoInfo:
    """Read the container header; an unreadable file or one without video is an InputProblem."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise InputProblem(path, "no video track in the container")
            v = c.streams.video[0]
            duration = _declared_s(v)
            if duration is None:
                duration = c.duration / av.time_base if c.duration is not None else 0.0
            width, height = int(v.codec_context.width), int(v.codec_context.height)
            first = next(_decoded(c, v), None)  # the display matrix rides on decoded frames
            rotation = first.rotation if first is not None else 0
            if _quarter_turns(rotation) % 2:
                width, height = height, width
            audio = bool(c.streams.audio)
            return VideoInfo(str(path), duration, _fps(v), width, height, audio, rotation)
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise InputProblem(path, f"not a readable video ({type(e).__name__}: {e})") from e


def output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) shrunk so the longer side is at most `max_side`; never upscaled, at least 2 px."""
    scale = min(1.0, max_side / max(width, height, 1))
    return max(2, round(width * scale)), max(2, round(height * scale))


def _fps(stream: av.video.stream.VideoStream) -> float:
    """The stream's average frame rate (else guessed, else base); 0.0 when none is known."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _quarter_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns (0-3) that make a frame of display `rotation` upright
    (FFmpeg's sign: a phone's portrait video says -90, a clockwise turn). Other angles round
    to the nearest quarter turn; a mirroring in the display matrix is not applied."""
    return round(rotation / 90) % 4


def _display_size(frame: av.VideoFrame, max_side: int | None) -> tuple[int, int]:
    """(w, h) of `frame` as displayed (upright), shrunk by `output_size` unless `max_side` is
    None."""
    w, h = frame.width, frame.height
    if _quarter_turns(frame.rotation) % 2:
        w, h = h, w
    return (w, h) if max_side is None else output_size(w, h, max_side)


def _rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """`frame` as upright RGB of the displayed `size` (w, h): scaled as stored, then turned."""
    turns = _quarter_turns(frame.rotation)
    w, h = (size[1], size[0]) if turns % 2 else size
    img = frame.to_ndarray(format="rgb24", width=w, height=h)
    return np.ascontiguousarray(np.rot90(img, turns)) if turns else img


def _decoded_span(first_s: float, last_s: float, fps: float) -> float:
    """Seconds of video from the first frame's start to the last frame's end."""
    return last_s - first_s + (1.0 / fps if fps > 0 else 0.0)


@dataclass(frozen=True)
class Video:
    """Every decoded frame, and what a report needs about the source."""

    frames: np.ndarray  # (T, H, W, 3) uint8, upright, shrunk by `output_size`
    note: str | None = None  # truncated: what the header declares, what was decoded and kept


def read_video(path: Path, max_side: int = 480) -> Video:
    """Decode every video frame as upright RGB, shrunk by `output_size` (bounding memory for
    1280x720 sources), with a note if the stream holds less than it declares."""
    frames, times = [], []
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise InputProblem(path, "no video track in the container")
            stream = c.streams.video[0]
            fps, size = _fps(stream), None
            for frame in _decoded(c, stream):
                size = size or _display_size(frame, max_side)
                frames.append(_rgb(frame, size))
                times.append(frame.time if frame.time is not None else len(times) / (fps or 25))
            declared = _declared_s(stream)
    except av.error.FFmpegError as e:
        raise InputProblem(path, f"undecodable video ({e})") from e
    if not frames:
        raise InputProblem(path, "no decodable video frames")
    note = truncation_note(declared, _decoded_span(times[0], max(times), fps), "video")
    return Video(np.stack(frames), note)


def read_frames(path: Path, max_side: int = 480) -> np.ndarray:
    """`read_video`'s frames: uint8 (T, H, W, 3)."""
    return read_video(path, max_side).frames


def sample_indices(n_available: int, n_wanted: int) -> np.ndarray:
    """`n_wanted` frame indices spread evenly over `n_available` frames, first to last, rounded.

    Clips shorter than `n_wanted` frames: indices repeat, each frame held for about
    `n_wanted / n_available` picks, so a model taking a fixed number of frames still gets them in
    order. A caller that needs distinct frames checks the length first (preprocessing skips such
    clips, naming the count).
    """
    if n_available < 1:
        raise ValueError(f"cannot pick {n_wanted} frames from {n_available}")
    return np.linspace(0, n_available - 1, n_wanted).round().astype(np.int64)


def frames_at(path: Path, indices: np.ndarray, max_side: int) -> np.ndarray:
    """Decoded frames number `indices` (sorted, repeats allowed), shrunk as `read_frames` shrinks
    them, without holding the whole video: (len(indices), H, W, 3) uint8."""
    wanted = np.asarray(indices)
    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            size = None
            for i, frame in enumerate(_decoded(c, stream)):
                size = size or _display_size(frame, max_side)
                reps = int((wanted == i).sum())
                if reps:
                    out.extend([_rgb(frame, size)] * reps)
                if len(out) == len(wanted):
                    break
    except (av.error.FFmpegError, IndexError) as e:
        raise InputProblem(path, f"undecodable video ({type(e).__name__}: {e})") from e
    if len(out) != len(wanted):
        raise InputProblem(path, f"decoded {len(out)} of the {len(wanted)} frames asked for")
    return np.stack(out)


class FrameSampler:
    """The frame nearest each multiple of 1/`rate` seconds, yielded one at a time as
    `(t, image)` while the video decodes, so a caller holds only the frames it still needs.

    Iterating decodes the whole stream; afterwards `n_decoded`, `last_time` (the last decoded
    frame's time), `fps` (the stream's average rate), `size` ((w, h) of the yielded frames,
    upright: `output_size` of `max_side`, or the displayed size with `max_side` None) and `note`
    (a truncation note, as `read_video`'s, or None) describe it. A clip
    shorter than one period still yields its first frame. Frames without a timestamp (some
    AVI/FLV muxers) are timed by their index and the stream's frame rate.
    """

    def __init__(self, path: Path, rate: float, max_side: int | None):
        if rate <= 0:
            raise ValueError(f"frame sampling rate must be > 0, got {rate}")
        if max_side is not None and max_side < 2:
            raise ValueError(f"max_side must be >= 2 pixels (or None: full size), got {max_side}")
        self.path, self.rate, self.max_side = Path(path), rate, max_side
        self.n_decoded, self.last_time, self.fps = 0, 0.0, 0.0
        self.size: tuple[int, int] = (0, 0)
        self.note: str | None = None

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        path, period = self.path, 1.0 / self.rate
        prev: tuple[float, av.VideoFrame] | None = None
        n, t0, t, k = 0, None, 0.0, 0
        try:
            with av.open(str(path)) as c:
                if not c.streams.video:
                    raise InputProblem(path, "no video track in the container")
                stream = c.streams.video[0]
                stream.thread_type = "AUTO"
                self.fps = _fps(stream) or 25.0
                declared = _declared_s(stream)
                for frame in _decoded(c, stream):
                    if not n:
                        self.size = _display_size(frame, self.max_side)
                    raw = frame.time if frame.time is not None else n / self.fps
                    t0 = raw if t0 is None else t0
                    t = max(raw - t0, prev[0] if prev else 0.0)  # monotone with B-frame jitter
                    while t >= k * period:
                        # nearest of the previous and the current frame to the target time
                        target = k * period
                        pick = prev if prev and target - prev[0] < t - target else (t, frame)
                        k += 1
                        yield target, _rgb(pick[1], self.size)
                    prev, n = (t, frame), n + 1
                    self.n_decoded, self.last_time = n, t
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            raise InputProblem(path, f"undecodable video ({type(e).__name__}: {e})") from e
        if not n:
            raise InputProblem(path, "no decodable video frames")
        self.note = truncation_note(declared, _decoded_span(0.0, t, self.fps), "video")


def sample_frames(path: Path, rate: float, max_side: int | None) -> SampledFrames:
    """Every frame `FrameSampler` picks, held together (short clips; tests)."""
    sampler = FrameSampler(path, rate, max_side)
    picked = list(sampler)
    times, images = zip(*picked, strict=True) if picked else ((), ())
    return SampledFrames(np.stack(images), np.asarray(times), sampler.n_decoded,
                         sampler.last_time)  # fmt: skip


class Container(NamedTuple):
    """How `write_video` fills one container (all codecs in PyAV's bundled FFmpeg)."""

    format: str  # FFmpeg muxer
    video_codec: str
    pix_fmt: str  # yuv444p lets H.264 and FFV1 take odd frame sizes
    video_options: dict[str, str]
    audio_codec: str
    audio_rate: int | None  # the rate the audio codec needs; None: the caller's rate


# Constant QP and one thread: x264's CRF rate control was measured not byte-stable across runs.
# superfast keeps B-frames and CABAC (as the releases' H.264 has) at 3.5x the speed of fast.
X264 = {"preset": "superfast", "qp": "22", "threads": "1"}
CONTAINERS: dict[str, Container] = {
    ".mp4": Container("mp4", "libx264", "yuv420p", X264, "aac", None),
    ".flv": Container("flv", "libx264", "yuv420p", X264, "aac", None),  # as CREMA-D's
    ".mov": Container("mov", "libx264", "yuv444p", X264, "aac", None),
    ".avi": Container("avi", "ffv1", "yuv444p", {}, "pcm_s16le", None),
    ".webm": Container("webm", "libvpx", "yuv420p", {}, "libopus", 48000),
    ".mkv": Container("matroska", "ffv1", "yuv444p", {}, "libopus", 48000),
}


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    audio_rate: int | None = None,
    rotation: int = 0,
) -> None:
    """Encode uint8 (T, H, W, 3) frames (+ mono float audio at `audio_rate`) in the container
    `path`'s extension names (`CONTAINERS`), byte-identically run to run. A `rotation` stores a
    display matrix, as phones do (degrees counter-clockwise, FFmpeg's sign; portrait: -90): the
    frames are stored as given and shown turned."""
    ext = path.suffix.lower()
    if ext not in CONTAINERS:
        raise ValueError(f"cannot write '{ext}' videos; valid: {sorted(CONTAINERS)}")
    box = CONTAINERS[ext]
    if box.pix_fmt == "yuv420p" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ValueError(
            f"{ext} ({box.video_codec}, {box.pix_fmt}) needs even sizes, got {frames.shape[1:3]}"
        )
    if audio is not None and not audio_rate:
        raise ValueError("write_video: audio given without its audio_rate")
    path.parent.mkdir(parents=True, exist_ok=True)
    _, height, width, _ = frames.shape
    with av.open(str(path), "w", format=box.format) as c:
        c.metadata.clear()
        v = c.add_stream(box.video_codec, rate=Fraction(fps).limit_denominator(1001))
        v.width, v.height, v.pix_fmt = width, height, box.pix_fmt
        if box.video_options:
            v.options = dict(box.video_options)
        v.codec_context.thread_count = 1
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio is not None:  # every stream is added before the first packet is muxed
            a = c.add_stream(box.audio_codec, rate=box.audio_rate or audio_rate)
            a.layout = "mono"
        for img in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
        c.mux(v.encode())
        if a is not None:
            _encode_audio(c, a, np.asarray(audio, np.float32), audio_rate)


def remux_video_only(src: Path, dst: Path) -> None:
    """Copy `src`'s video stream into `dst` packet for packet (no re-encoding) and leave its
    audio out: what a video-only release of an audio-video file holds (RAVDESS's 02 of its 01)."""
    ext = dst.suffix.lower()
    if ext not in CONTAINERS:
        raise ValueError(f"cannot write '{ext}' videos; valid: {sorted(CONTAINERS)}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as i, av.open(str(dst), "w", format=CONTAINERS[ext].format) as o:
        o.metadata.clear()
        v_in = i.streams.video[0]
        v_out = o.add_stream_from_template(v_in)
        for packet in i.demux(v_in):
            if packet.dts is None:  # the demuxer's closing packet
                continue
            packet.stream = v_out
            o.mux(packet)


def _encode_audio(c: av.container.OutputContainer, a, samples: np.ndarray, rate: int) -> None:
    """Feed mono samples in the encoder's frame size; through a resampler only when the encoder
    takes another sample format or rate than planar float at `rate` (AAC takes them as they are)."""
    ctx = a.codec_context
    resampler = None
    if ctx.format.name != "fltp" or ctx.sample_rate != rate:
        resampler = av.AudioResampler(format=ctx.format, layout="mono", rate=ctx.sample_rate,
                                      frame_size=ctx.frame_size or None)  # fmt: skip
    step = ctx.frame_size or 1024
    for start in range(0, len(samples), step):
        chunk = samples[start : start + step][None, :]  # (channels=1, n) planar
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for f in resampler.resample(frame) if resampler else [frame]:
            c.mux(a.encode(f))
    for f in resampler.resample(None) if resampler else []:
        c.mux(a.encode(f))
    c.mux(a.encode())


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB uint8 (H, W, 3) image to (size, size, 3), bilinear."""
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))


TRACK_BLOCK_SAMPLES = (
    1 << 20
)  # `read_track` decodes in blocks of this many samples (65 s at 16 kHz)


class AudioTrack:
    """The first audio track of a container, yielded block by block as it decodes: mono float32
    at `target_rate`, `block_samples` per block (the last one shorter), so memory holds one block
    whatever the recording's length. soxr's streaming resampler gives the very samples that
    resampling the whole track at once gives.

    After iterating, `source_rate` and `n_source` (samples at that rate) describe the track, and
    `note` says when it decoded to less than the container declares (`truncation_note`). No
    track, a track that decodes to nothing and impossible samples (`check_samples`) are
    `InputProblem`s.
    """

    def __init__(self, path: Path, target_rate: int, block_samples: int):
        if block_samples < 1:
            raise ValueError(f"block_samples must be >= 1, got {block_samples}")
        self.path, self.target_rate, self.block_samples = Path(path), target_rate, block_samples
        self.source_rate, self.n_source = 0, 0
        self.note: str | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        path, pending, held = self.path, [], 0
        try:
            with av.open(str(path)) as c:
                if not c.streams.audio:
                    raise InputProblem(path, "no audio track in the container")
                stream = c.streams.audio[0]
                self.source_rate = rate = stream.codec_context.sample_rate
                mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
                resample = None
                if rate != self.target_rate:
                    resample = soxr.ResampleStream(rate, self.target_rate, 1, dtype="float32",
                                                   quality="HQ")  # fmt: skip
                for f in _mono_frames(c, stream, mono):
                    x = f.to_ndarray().reshape(-1)
                    check_samples(path, x, self.n_source / rate)
                    self.n_source += x.size
                    pending.append(x if resample is None else resample.resample_chunk(x))
                    held += pending[-1].size
                    if held >= self.block_samples:
                        joined = np.concatenate(pending)
                        cut = joined.size - joined.size % self.block_samples
                        yield from np.split(joined[:cut], cut // self.block_samples)
                        pending, held = [joined[cut:]], joined.size - cut
                declared = _declared_s(stream)
        except av.error.FFmpegError as e:
            raise InputProblem(path, f"undecodable audio ({e})") from e
        if resample is not None:
            pending.append(resample.resample_chunk(np.zeros(0, np.float32), last=True))
        if self.n_source == 0:
            raise InputProblem(path, "empty audio (0 samples)")
        self.note = truncation_note(declared, self.n_source / rate, "audio")
        rest = np.concatenate(pending) if pending else np.zeros(0, np.float32)
        for i in range(0, rest.size, self.block_samples):
            yield rest[i : i + self.block_samples]


def _mono_frames(c, stream, mono: av.AudioResampler) -> Iterator[av.AudioFrame]:
    """Every decoded frame of `stream` through `mono`, then what the resampler still holds."""
    for frame in _decoded(c, stream):
        yield from mono.resample(frame)
    yield from mono.resample(None)
