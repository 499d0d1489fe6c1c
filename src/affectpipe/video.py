"""Arbitrary user videos (mp4, avi, mov, flv, webm; any size, any frame rate) for inference.

The datasets' own readers (`affectpipe.data.media`) decode clips of a known layout; a user's
video can be long, have a variable frame rate, no audio, or timestamps that do not start at 0.
Frames are sampled at a fixed rate on the stream's own clock (seconds from the first frame), so
a valence/arousal trace lines up with the video whatever its fps, and only the sampled frames
are kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from affectpipe.problems import InputProblem

VIDEO_EXTS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".flv", ".webm", ".mkv", ".m4v")


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video, before decoding it."""

    path: str
    duration_s: float  # container or stream duration; 0.0 when neither is stored
    fps: float  # average frame rate of the video stream
    width: int
    height: int
    has_audio: bool


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


def _stream_duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def probe(path: Path) -> VideoInfo:
    """Read the container header; an unreadable file or one without video is an InputProblem."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise InputProblem(path, "no video track in the container")
            v = c.streams.video[0]
            rate = v.average_rate or v.guessed_rate or v.base_rate
            return VideoInfo(
                path=str(path),
                duration_s=_stream_duration(c, v),
                fps=float(rate) if rate else 0.0,
                width=int(v.codec_context.width),
                height=int(v.codec_context.height),
                has_audio=bool(c.streams.audio),
            )
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise InputProblem(path, f"not a readable video ({type(e).__name__}: {e})") from e


def output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) shrunk so the longer side is at most `max_side`; never upscaled, at least 2 px."""
    scale = min(1.0, max_side / max(width, height, 1))
    return max(2, round(width * scale)), max(2, round(height * scale))


def sample_frames(path: Path, rate: float, max_side: int = 256) -> SampledFrames:
    """Decode the video, keeping the frame nearest to each multiple of 1/`rate` seconds.

    A clip shorter than one period still yields its first frame. Frames without a timestamp
    (some AVI/FLV muxers) are timed by their index and the stream's frame rate.
    """
    if rate <= 0:
        raise ValueError(f"frame sampling rate must be > 0, got {rate}")
    period = 1.0 / rate
    images: list[np.ndarray] = []
    times: list[float] = []
    prev: tuple[float, av.VideoFrame] | None = None
    n, t0, t = 0, None, 0.0
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise InputProblem(path, "no video track in the container")
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            size = output_size(stream.codec_context.width, stream.codec_context.height, max_side)
            for frame in c.decode(stream):
                raw = frame.time if frame.time is not None else n / fps
                t0 = raw if t0 is None else t0
                t = max(raw - t0, prev[0] if prev else 0.0)  # monotone even with B-frame jitter
                target = len(times) * period
                while t >= target:
                    # nearest of the previous and the current frame to the target time
                    pick = prev if prev and target - prev[0] < t - target else (t, frame)
                    images.append(pick[1].to_ndarray(format="rgb24", width=size[0],
                                                     height=size[1]))  # fmt: skip
                    times.append(target)
                    target = len(times) * period
                prev, n = (t, frame), n + 1
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise InputProblem(path, f"undecodable video ({type(e).__name__}: {e})") from e
    if not n:
        raise InputProblem(path, "no decodable video frames")
    return SampledFrames(np.stack(images), np.asarray(times), n, t)


# Codecs per container that PyAV's bundled FFmpeg can write: (video codec, pixel format,
# audio codec, audio rate). yuv444p / ffv1 let H.264 and AVI take odd frame sizes.
CONTAINER_CODECS: dict[str, tuple[str, str, str, int]] = {
    ".mp4": ("libx264", "yuv420p", "aac", 48000),
    ".mov": ("libx264", "yuv444p", "aac", 48000),
    ".avi": ("ffv1", "yuv444p", "pcm_s16le", 16000),
    ".flv": ("flv", "yuv420p", "aac", 44100),
    ".webm": ("libvpx", "yuv420p", "libopus", 48000),
    ".mkv": ("ffv1", "yuv444p", "libopus", 48000),
}


def write_video(
    path: Path, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
    audio_rate: int = 16000,
) -> None:  # fmt: skip
    """Encode uint8 (T, H, W, 3) frames (+ mono float audio) in the container `path` names.

    For samples and tests of the predictor: every supported container, odd sizes, any fps.
    """
    ext = path.suffix.lower()
    if ext not in CONTAINER_CODECS:
        raise ValueError(f"cannot write '{ext}' videos; valid: {sorted(CONTAINER_CODECS)}")
    vcodec, pix_fmt, acodec, out_rate = CONTAINER_CODECS[ext]
    if pix_fmt == "yuv420p" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ValueError(f"{ext} ({vcodec}, {pix_fmt}) needs even sizes, got {frames.shape[1:3]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    from fractions import Fraction

    with av.open(str(path), "w") as c:
        c.metadata.clear()
        v = c.add_stream(vcodec, rate=Fraction(fps).limit_denominator(1001))
        v.height, v.width, v.pix_fmt = frames.shape[1], frames.shape[2], pix_fmt
        v.codec_context.thread_count = 1
        a = None
        if audio is not None:  # every stream is added before the first packet is muxed
            a = c.add_stream(acodec, rate=out_rate)
            a.layout = "mono"
        for img in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
        c.mux(v.encode())
        if a is not None:
            _write_audio(c, a, np.asarray(audio, np.float32), audio_rate)


def _write_audio(c, a, samples: np.ndarray, rate: int) -> None:
    resampler = av.AudioResampler(format=a.codec_context.format, layout="mono",
                                  rate=a.codec_context.sample_rate,
                                  frame_size=a.codec_context.frame_size or None)  # fmt: skip
    step = 1024
    for start in range(0, len(samples), step):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + step], format="flt",
                                           layout="mono")  # fmt: skip
        frame.sample_rate, frame.pts = rate, start
        for f in resampler.resample(frame):
            c.mux(a.encode(f))
    for f in resampler.resample(None):
        c.mux(a.encode(f))
    c.mux(a.encode())


def frames_at(path: Path, indices: np.ndarray, max_side: int) -> np.ndarray:
    """Decoded frames number `indices` (sorted, repeats allowed), shrunk as `media.read_frames`
    shrinks them, without holding the whole video: (len(indices), H, W, 3) uint8."""
    wanted = np.asarray(indices)
    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            size = output_size(stream.codec_context.width, stream.codec_context.height, max_side)
            for i, frame in enumerate(c.decode(stream)):
                reps = int((wanted == i).sum())
                if reps:
                    img = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                    out.extend([img] * reps)
                if len(out) == len(wanted):
                    break
    except (av.error.FFmpegError, IndexError) as e:
        raise InputProblem(path, f"undecodable video ({type(e).__name__}: {e})") from e
    if len(out) != len(wanted):
        raise InputProblem(path, f"decoded {len(out)} of the {len(wanted)} frames asked for")
    return np.stack(out)
