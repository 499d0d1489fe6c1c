"""What to embed: a `Plan` of clips and their model inputs, read from a processed dataset folder.

A plan is built once, from file headers only (PNG size, `.npy` header, WAV header), so bad
inputs are found and reported before any model runs, and every process of a sharded run sees
the same plan. Items are the model's unit of input (a frame for CLIP, a clip for VideoMAE and
wav2vec2), listed in clip order so that each clip owns a contiguous range `[start, stop)`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from affectpipe.problems import InputProblem, ProblemLog

SAMPLE_RATE = 16_000
_PATH_COLUMNS = {"frames_path", "audio_path", "has_video", "has_audio"}


@dataclass(frozen=True)
class Item:
    """One model input: a file, the frame row inside it (-1: whole file), its length in samples."""

    clip_id: str
    path: str
    index: int = -1
    length: int = 0


@dataclass
class ClipEntry:
    """A clip: its items are `plan.items[start:stop]`; labels are scalars or per-item arrays."""

    clip_id: str
    start: int
    stop: int
    labels: dict[str, Any]


@dataclass
class Plan:
    dataset: str
    clips: list[ClipEntry] = field(default_factory=list)  # sorted by clip_id
    items: list[Item] = field(default_factory=list)
    no_modality: list[str] = field(default_factory=list)  # clips without this modality

    def add(self, clip_id: str, items: list[Item], labels: dict[str, Any]) -> None:
        start = len(self.items)
        self.items.extend(items)
        self.clips.append(ClipEntry(clip_id, start, len(self.items), labels))


def _plain(value: Any) -> Any:
    """pandas/numpy scalars -> str | int | float, the types HDF5 attributes take."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    return value


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def read_csv(path: Path, required: set[str], id_column: str) -> pd.DataFrame:
    """Read a manifest, ids as strings (`001` stays `001`), naming any missing column."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such manifest; run the preprocess stage first")
    table = pd.read_csv(path, dtype={id_column: str, "actor": str})
    missing = sorted(required - set(table.columns))
    if missing:
        raise InputProblem(path, f"missing column(s) {missing}; has {sorted(table.columns)}")
    return table


def source_settings(folder: Path) -> str:
    """The preprocessing settings a processed folder's `report.json` records, as sorted JSON
    ("{}" when it records none): file attributes of every cache made from the folder."""
    report = folder / "report.json"
    settings = json.loads(report.read_text()).get("settings", {}) if report.is_file() else {}
    return json.dumps(settings, sort_keys=True)


def afewva_frames_plan(folder: Path, log: ProblemLog) -> Plan:
    """AFEW-VA face crops: one item per frame, per-frame `frame`, `valence`, `arousal`."""
    columns = {"clip", "frame", "crop_path", "valence", "arousal", "actor", "split"}
    table = read_csv(folder / "frames.csv", columns, "clip")
    plan = Plan("afewva")
    for clip_id, rows in sorted(table.groupby("clip", sort=False), key=lambda kv: kv[0]):
        rows = rows.sort_values("frame")
        keep = [_image_ok(folder / r.crop_path, log) for r in rows.itertuples()]
        rows = rows[keep]
        if rows.empty:
            continue
        items = [Item(clip_id, str(folder / p)) for p in rows["crop_path"]]
        plan.add(
            clip_id,
            items,
            {
                "frame": rows["frame"].to_numpy(np.int64),
                "valence": rows["valence"].to_numpy(np.float32),
                "arousal": rows["arousal"].to_numpy(np.float32),
                "actor": str(rows["actor"].iloc[0]),
                "split": str(rows["split"].iloc[0]),
            },
        )
    return plan


def _image_ok(path: Path, log: ProblemLog) -> bool:
    try:
        with Image.open(path) as im:  # header only: decoding happens in the loader
            im.size  # noqa: B018
    except (OSError, ValueError) as e:
        log.report(InputProblem(path, f"unreadable image ({type(e).__name__}: {e})"))
        return False
    return True


def _frames_shape(path: Path, log: ProblemLog) -> tuple[int, ...] | None:
    """Shape of a `(T, H, W, 3)` uint8 frames file, or None (reported) when it is not one."""
    try:
        frames = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        log.report(InputProblem(path, f"unreadable frames file ({type(e).__name__}: {e})"))
        return None
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        log.report(
            InputProblem(path, f"expected uint8 (T>0, H, W, 3), got {frames.dtype} {frames.shape}")
        )
        return None
    return frames.shape


def _audio_length(path: Path, min_samples: int, log: ProblemLog) -> int | None:
    try:
        info = sf.info(str(path))
    except (OSError, RuntimeError) as e:
        log.report(InputProblem(path, f"unreadable WAV ({type(e).__name__}: {e})"))
        return None
    if info.samplerate != SAMPLE_RATE or info.channels != 1:
        log.report(
            InputProblem(
                path, f"expected {SAMPLE_RATE} Hz mono, got {info.samplerate} Hz x{info.channels}"
            )
        )
        return None
    if info.frames < min_samples:
        log.report(
            InputProblem(
                path,
                f"{info.frames} samples, shorter than the backbone's "
                f"receptive field ({min_samples})",
            )
        )
        return None
    return int(info.frames)


def av_plan(folder: Path, dataset: str, unit: str, log: ProblemLog, min_samples: int = 1) -> Plan:
    """RAVDESS/CREMA-D clips from `clips.csv`.

    `unit`: `frame` (one item per row of `frames/<clip>.npy`, for CLIP), `video` (the whole
    `.npy`, for VideoMAE) or `audio` (the WAV, for wav2vec2). Clips whose `has_video` /
    `has_audio` is false are listed in `plan.no_modality`, not embedded.
    """
    units = ("frame", "video", "audio")
    if unit not in units:
        raise ValueError(f"unknown input unit '{unit}'; valid: {list(units)}")
    audio = unit == "audio"
    flag, column = ("has_audio", "audio_path") if audio else ("has_video", "frames_path")
    table = read_csv(folder / "clips.csv", {"clip_id", flag, column}, "clip_id")
    plan = Plan(dataset)
    for row in table.sort_values("clip_id").to_dict("records"):
        clip_id = row["clip_id"]
        if not _truthy(row[flag]):
            plan.no_modality.append(clip_id)
            continue
        path = folder / str(row[column])
        labels = {k: _plain(v) for k, v in row.items() if k not in _PATH_COLUMNS | {"clip_id"}}
        if audio:
            length = _audio_length(path, min_samples, log)
            if length is not None:
                plan.add(clip_id, [Item(clip_id, str(path), length=length)], labels)
            continue
        shape = _frames_shape(path, log)
        if shape is None:
            continue
        if unit == "video":
            plan.add(clip_id, [Item(clip_id, str(path))], labels)
        else:
            items = [Item(clip_id, str(path), index=t) for t in range(shape[0])]
            plan.add(clip_id, items, {**labels, "frame": np.arange(shape[0], dtype=np.int64)})
    return plan
