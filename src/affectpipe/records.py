"""The per-video record of `affectpipe predict` and where records go.

A record holds every field of the schema in docs/predict.md, `null` until a model fills it, with
the reason for each field left `null` in `unavailable`. `Sink` writes records as they are ready:
JSON on stdout, one line each in a `.jsonl` file, or one `.json` per video in a folder.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from affectpipe.data.faces import DETECTOR
from affectpipe.data.labels import EMOTIONS
from affectpipe.data.media import VideoInfo
from affectpipe.problems import write_json

if TYPE_CHECKING:
    from affectpipe.data.framecrop import ClipCrop

VERDICTS: tuple[str, str] = ("incongruent", "congruent")
EMOTION_FIELDS: tuple[str, ...] = ("emotion", "face_emotion", "voice_emotion")


def emotion_block(probs: np.ndarray) -> dict[str, Any]:
    """(8,) probabilities -> {label, probabilities: {name: p}}, the label being the argmax."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()  # float32 softmax sums to 1 within 1e-7; make the JSON sum exact-ish
    return {
        "label": EMOTIONS[int(p.argmax())],
        "probabilities": {name: round(float(v), 6) for name, v in zip(EMOTIONS, p, strict=True)},
    }


def congruence_block(prob: float, threshold: float, calibrated: bool) -> dict[str, Any]:
    """Probability that face and voice agree, the verdict at `threshold` and the threshold
    itself; `calibrated`: whether the probability went through the checkpoint's calibration."""
    return {"probability": round(float(prob), 6), "verdict": VERDICTS[int(prob >= threshold)],
            "threshold": round(float(threshold), 6), "calibrated": calibrated}  # fmt: skip


VA_FIELDS: tuple[str, ...] = ("frames", "va_windows", "valence_mean", "arousal_mean")


def va_block(
    times: np.ndarray, va: np.ndarray, starts: np.ndarray, windows: np.ndarray, fps: float
) -> dict[str, Any]:
    """Per-frame {t, valence, arousal} (va: (T, 2) in [-1, 1], frame k at `times[k]`), their
    clip means, and per window {start, end, valence, arousal}: windows (W, L, 2) of frames
    `starts[i]` .. `starts[i] + L - 1`, spanning L frames of 1/`fps` s, and their means."""
    frames = [
        {"t": round(float(t), 4), "valence": round(float(v), 6), "arousal": round(float(a), 6)}
        for t, (v, a) in zip(times, va, strict=True)
    ]
    length = windows.shape[1]
    spans = [
        {"start": round(float(times[s]), 4), "end": round(float(times[s] + length / fps), 4),
         "valence": round(float(w[:, 0].mean()), 6), "arousal": round(float(w[:, 1].mean()), 6)}
        for s, w in zip(starts, windows, strict=True)
    ]  # fmt: skip
    means = va.mean(axis=0)
    return {"frames": frames, "va_windows": spans, "valence_mean": round(float(means[0]), 6),
            "arousal_mean": round(float(means[1]), 6)}  # fmt: skip


def face_block(
    crop: ClipCrop,
    width: int,
    height: int,
    times: Iterable[float] | None = None,
    indices: Iterable[int] | None = None,
) -> dict[str, Any]:
    """How a video's sampled frames were cropped (`data.framecrop.ClipCrop`): the method asked
    for and the one `used` (`center` when no face was found), the detection `coverage`, and per
    frame the box in the video's own pixels (frames may have been shrunk) and whether the
    detector found the face in that frame (else the box is interpolated or held)."""
    sx = width / crop.crops_from[1] if width else 1.0
    sy = height / crop.crops_from[0] if height else 1.0
    ts = None if times is None else [float(t) for t in times]
    ix = None if indices is None else [int(i) for i in indices]
    frames = []
    for i, box in enumerate(crop.boxes):
        x0, y0, x1, y1 = box
        frame: dict[str, Any] = {
            "box": [round(x0 * sx, 1), round(y0 * sy, 1), round(x1 * sx, 1), round(y1 * sy, 1)],
            "detected": bool(crop.detected[i]) if crop.detected is not None else None,
        }
        if ts is not None:
            frame["t"] = round(ts[i], 4)
        if ix is not None:
            frame["index"] = ix[i]
        frames.append(frame)
    return {
        "method": crop.method,
        "used": crop.used,
        "detector": DETECTOR if crop.method == "face" else None,
        "coverage": None if crop.coverage is None else round(crop.coverage, 4),
        "frames": frames,
    }


def empty_record(info: VideoInfo, duration_s: float) -> dict[str, Any]:
    """Every field of the schema, null until a model fills it."""
    return {
        "file": info.path,
        "duration_s": round(duration_s, 4),
        "fps": round(info.fps, 4),
        "width": info.width,
        "height": info.height,
        "has_audio": info.has_audio,
        "time_base": None,
        "frames": [],
        "va_windows": [],
        "valence_mean": None,
        "arousal_mean": None,
        "emotion": None,
        "face_emotion": None,
        "voice_emotion": None,
        "congruence": None,
        "face": {"va": None, "av": None},
        "speaker_norm": None,  # the AV models' speaker normalisation, where they have one
        "models": {},
        "unavailable": [],
        "notes": [],  # what the decoding found and kept: a file cut short (`data.media`)
    }


def mark_unavailable(record: dict[str, Any], fields: Iterable[str], reason: str) -> None:
    for name in fields:
        record["unavailable"].append({"field": name, "reason": reason})


@dataclass
class Outcome:
    """One processed input: its record, or the error that stopped it."""

    path: Path
    record: dict[str, Any] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return (
            self.record
            if self.record is not None
            else {"file": str(self.path), "error": self.error}
        )


class Sink:
    """Where outcomes go: stdout (JSON), a `.jsonl` file, or one `.json` per video in a folder."""

    def __init__(self, output: Path | None, root: Path | None, stream: TextIO | None = None):
        self.output, self.root = output, root
        self.stream = stream or sys.stdout  # looked up now: callers may have redirected it
        self.jsonl = output is not None and output.suffix.lower() == ".jsonl"
        self._file: TextIO | None = None
        if self.jsonl:
            output.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(output, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        elif output is not None:
            if output.exists() and not output.is_dir():
                raise FileExistsError(
                    f"{output}: exists and is not a folder (use a .jsonl name "
                    "for one file, or a folder for one JSON per video)"
                )
            output.mkdir(parents=True, exist_ok=True)

    def target(self, path: Path) -> Path:
        """`out/<path relative to the input folder>.json`: `a.mp4` and `a.avi` stay apart."""
        rel = path.relative_to(self.root) if self.root else Path(path.name)
        return self.output / rel.parent / f"{rel.name}.json"

    def write(self, outcome: Outcome) -> None:
        obj = outcome.to_json()
        if self._file is not None:
            self._file.write(json.dumps(obj, sort_keys=True, allow_nan=False) + "\n")
            self._file.flush()
        elif self.output is not None:
            write_json(self.target(outcome.path), obj)
        else:
            self.stream.write(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def video_duration(info: VideoInfo, last_time: float) -> float:
    """The container's duration, or (when it stores none) last frame time + one frame."""
    if info.duration_s > 0:
        return info.duration_s
    return last_time + (1.0 / info.fps if info.fps > 0 else 0.0)
