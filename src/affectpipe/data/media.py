"""Audio and video I/O for the audio-visual datasets: PyAV for containers, soundfile for WAV.

Decoding problems (no audio track, an empty or silent WAV, a truncated container) become
`InputProblem`s naming the file, so the caller can stop or record a skip; nothing here guesses.
Encoding is single-threaded so the synthetic datasets come out byte-identical across runs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr
from PIL import Image

from affectpipe.problems import InputProblem

WAV_EXTS = (".wav",)
VIDEO_EXTS = (".mp4", ".flv")


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples at `sample_rate`, with the facts a report needs about the source."""

    samples: np.ndarray  # (N,) float32
    sample_rate: int
    source_rate: int  # the rate the file was stored at
    duration_s: float  # duration of the source, before resampling

    @property
    def loudness_db(self) -> float:
        """RMS level in dBFS (full-scale sine = -3 dB)."""
        return rms_db(self.samples)


def rms_db(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def _finish_audio(
    path: Path, mono: np.ndarray, rate: int, target_rate: int, silence_db: float
) -> Audio:
    if mono.size == 0:
        raise InputProblem(path, "empty audio (0 samples)")
    level = rms_db(mono)
    if level < silence_db:
        raise InputProblem(path, f"silent audio (RMS {level:.1f} dBFS, below {silence_db} dBFS)")
    out = mono if rate == target_rate else soxr.resample(mono, rate, target_rate, quality="HQ")
    return Audio(np.asarray(out, dtype=np.float32), target_rate, rate, mono.size / rate)


def read_wav(path: Path, target_rate: int, silence_db: float = -60.0) -> Audio:
    """Read a WAV file as mono float32 resampled to `target_rate` (soxr)."""
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise InputProblem(path, f"unreadable WAV ({e})") from e
    return _finish_audio(path, data.mean(axis=1), rate, target_rate, silence_db)


def read_track(path: Path, target_rate: int, silence_db: float = -60.0) -> Audio:
    """Decode the first audio track of a video container as mono float32 at `target_rate`."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                raise InputProblem(path, "no audio track in the container")
            stream = c.streams.audio[0]
            rate = stream.codec_context.sample_rate
            mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = [
                f.to_ndarray().reshape(-1)
                for frame in c.decode(stream)
                for f in mono.resample(frame)
            ]
            chunks += [f.to_ndarray().reshape(-1) for f in mono.resample(None)]
    except av.error.FFmpegError as e:
        raise InputProblem(path, f"undecodable audio ({e})") from e
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return _finish_audio(path, samples, rate, target_rate, silence_db)


def has_audio_track(path: Path) -> bool:
    try:
        with av.open(str(path)) as c:
            return bool(c.streams.audio)
    except av.error.FFmpegError:
        return False


def read_frames(path: Path, max_side: int = 480) -> np.ndarray:
    """Decode every video frame as RGB, shrunk so the longer side is at most `max_side`.

    Returns uint8 (T, H, W, 3). Shrinking at decode time bounds memory for 1280x720 sources.
    """
    frames = []
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise InputProblem(path, "no video track in the container")
            stream = c.streams.video[0]
            w, h = stream.codec_context.width, stream.codec_context.height
            scale = min(1.0, max_side / max(w, h, 1))
            size = (max(2, round(w * scale)), max(2, round(h * scale)))
            for frame in c.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24", width=size[0], height=size[1]))
    except av.error.FFmpegError as e:
        raise InputProblem(path, f"undecodable video ({e})") from e
    if not frames:
        raise InputProblem(path, "no decodable video frames")
    return np.stack(frames)


def sample_indices(n_available: int, n_wanted: int) -> np.ndarray:
    """`n_wanted` frame indices spread evenly over `n_available` frames (first to last)."""
    if n_available < n_wanted:
        raise ValueError(f"{n_available} frames, fewer than the {n_wanted} requested")
    return np.linspace(0, n_available - 1, n_wanted).round().astype(int)


def write_wav(path: Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, subtype=subtype)


def write_float_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Mono IEEE-float WAV, written by hand: libsndfile stamps float WAVs with the time (PEAK
    chunk), which would make identical audio differ byte for byte between runs."""
    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)  # IEEE float, mono, 32 bit
    fact = struct.pack("<I", len(samples))
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<I", 4)
        + fact
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None = None,
    audio_rate: int = 48000,
    fmt: str = "mp4",
) -> None:
    """Encode uint8 (T, H, W, 3) frames as H.264 (+ mono AAC) in an mp4 or flv container.

    One encoder thread: x264 and FFmpeg's AAC are then byte-stable run to run.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _, height, width, _ = frames.shape
    with av.open(str(path), "w", format=fmt) as c:
        c.metadata.clear()
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        # constant QP: x264's CRF rate control was measured not byte-stable across runs here
        v.options = {"preset": "fast", "qp": "22", "threads": "1"}
        v.codec_context.thread_count = 1
        a = None
        if audio is not None:
            a = c.add_stream("aac", rate=audio_rate)
            a.layout = "mono"
        for img in frames:
            for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
        if a is not None:
            _encode_audio(c, a, audio.astype(np.float32), audio_rate)


def _encode_audio(c: av.container.OutputContainer, a, samples: np.ndarray, rate: int) -> None:
    step = a.codec_context.frame_size or 1024
    for start in range(0, len(samples), step):
        chunk = samples[start : start + step][None, :]  # (channels=1, n) planar
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in a.encode(frame):
            c.mux(packet)
    for packet in a.encode():
        c.mux(packet)


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB uint8 (H, W, 3) image to (size, size, 3), bilinear."""
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
