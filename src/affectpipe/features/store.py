"""The HDF5 feature cache: one file per backbone and dataset, one group per clip.

Layout::

    /                     attrs: format_version, complete, backbone, spec, config_hash, dtype,
                                 preprocessing, versions, ... (whatever the extractor records)
    /clips/<clip_id>/
        features          (n, dim) float32, chunked
        <label>           (n,) per-row labels (e.g. frame, valence, arousal)
        attrs             per-clip scalar labels (e.g. split, actor, emotion)

The file is written to a temporary name (`problems.atomic_path`) and renamed only when the
writer exits cleanly, so an interrupted extraction never leaves a file a reader accepts, and
`check_room` refuses a store its disk cannot hold before any of it is written (HDF5 on a full
disk can crash the process instead of raising); readers also check the provenance
attributes against what the caller expects, so a cache made by another backbone, config or
preprocessing is refused, not trusted. Writes are byte-deterministic (h5py stores no timestamps
unless `track_times=True`) and streamed: one clip in memory at a time.
"""

from __future__ import annotations

import errno
import shutil
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from affectpipe.problems import NOT_APPLICABLE, atomic_path

FORMAT_VERSION = 1
Scalar = str | int | float
_CHUNK_ROWS = 256

# `check_room`: a store takes its feature bytes plus this fraction (HDF5 metadata, per-row labels,
# chunk padding), plus ROOM_SLACK_BYTES so that a small store on an all but full disk is refused.
ROOM_MARGIN = 0.10
ROOM_SLACK_BYTES = 16 << 20

# `content` attribute of a Pipeline A block cache: CLIP hidden states before its LoRA blocks.
BLOCK_CONTENT = "clip_hidden_before_block"


class StaleCacheError(ValueError):
    """A feature file exists but was made by something else than what the caller expects."""


def _to_python(value: Any) -> Any:
    """h5py hands back numpy scalars and bytes; callers compare plain Python values."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_scalar(name: str, value: Any) -> Scalar:
    value = _to_python(value)
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, str | int | float):
        raise TypeError(f"attribute '{name}' must be str, int or float, got {type(value).__name__}")
    return value


def _check_clip_id(clip_id: str) -> None:
    if not clip_id or "/" in clip_id or clip_id in {".", ".."}:
        raise ValueError(f"invalid clip id {clip_id!r}: must be non-empty and contain no '/'")


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def check_room(path: Path, rows: int, width: int, itemsize: int = 4, copies: int = 1) -> None:
    """Refuse, before anything is written, a store of `rows` x `width` values of `itemsize`
    bytes (`copies` of it on the disk at once: a sharded run's parts beside the final file)
    that the free space of `path`'s folder cannot hold (ROOM_MARGIN, ROOM_SLACK_BYTES). HDF5
    on a full disk can crash the process instead of raising; this is the clean error instead."""
    need = int(rows * width * itemsize * copies * (1 + ROOM_MARGIN)) + ROOM_SLACK_BYTES
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"needs about {_gb(need)} for {rows} rows of {width}, {_gb(free)} free in {folder}",
            str(path),
        )


class FeatureWriter:
    """Context manager writing a temporary file, renamed to `path` only on success."""

    def __init__(self, path: Path | str, attrs: dict[str, Scalar]) -> None:
        self.path = Path(path)
        self._rename = ExitStack()
        self.attrs = {k: _check_scalar(k, v) for k, v in attrs.items()}
        reserved = {"format_version", "complete"} & set(self.attrs)
        if reserved:
            raise ValueError(f"attributes {sorted(reserved)} are reserved by the feature store")
        self._file: h5py.File | None = None
        self._dim: int | None = None

    def __enter__(self) -> FeatureWriter:
        self.tmp = self._rename.enter_context(atomic_path(self.path))
        try:
            self._file = h5py.File(self.tmp, "w")
            self._file.attrs["format_version"] = FORMAT_VERSION
            for key in sorted(self.attrs):
                self._file.attrs[key] = self.attrs[key]
            self._file.create_group("clips")
        except BaseException as err:
            self._close(type(err), err, err.__traceback__)
            raise
        return self

    def add(self, clip_id: str, features: np.ndarray, **labels: Any) -> None:
        """Store one clip: `features` (n, dim); labels are scalars or arrays of length n."""
        if self._file is None:
            raise RuntimeError("FeatureWriter.add called outside its `with` block")
        _check_clip_id(clip_id)
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] == 0:
            raise ValueError(f"clip {clip_id}: features must be (n>0, dim), got {features.shape}")
        if self._dim is None:
            self._dim = features.shape[1]
        if features.shape[1] != self._dim:
            raise ValueError(f"clip {clip_id}: dim {features.shape[1]}, file has dim {self._dim}")
        clips = self._file["clips"]
        if clip_id in clips:
            raise ValueError(f"clip {clip_id} added twice to {self.path}")
        group = clips.create_group(clip_id)
        chunks = (min(features.shape[0], _CHUNK_ROWS), features.shape[1])
        group.create_dataset("features", data=features, chunks=chunks)
        for name in sorted(labels):
            self._add_label(group, clip_id, name, labels[name], features.shape[0])

    @staticmethod
    def _add_label(group: h5py.Group, clip_id: str, name: str, value: Any, n: int) -> None:
        if name == "features":
            raise ValueError(f"clip {clip_id}: 'features' is not a valid label name")
        if np.ndim(value) == 0:
            group.attrs[name] = _check_scalar(name, value)
            return
        array = np.asarray(value)
        if array.shape[0] != n:
            raise ValueError(f"clip {clip_id}: label '{name}' has {array.shape[0]} rows, not {n}")
        if array.dtype.kind in "OUS":
            group.create_dataset(name, data=array.astype(object), dtype=h5py.string_dtype())
        else:
            group.create_dataset(name, data=array)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._file is not None, "FeatureWriter exited without being entered"
        self._close(exc_type, exc, tb)

    def _close(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the file; rename it on success, else remove it (`atomic_path`, which also names
        `path` in a full-disk error)."""
        f, self._file = self._file, None
        try:
            if f is not None:
                if exc_type is None:
                    f.attrs["complete"] = 1
                f.close()
        except BaseException as err:
            if not self._rename.__exit__(type(err), err, err.__traceback__):
                raise
        else:
            self._rename.__exit__(exc_type, exc, tb)


class FeatureReader:
    """Read access to a feature file; use `open_features` to get one with provenance checked."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file = h5py.File(self.path, "r")
        self.attrs: dict[str, Any] = {k: _to_python(v) for k, v in self._file.attrs.items()}
        clips = self._file.get("clips")
        self.clip_ids: list[str] = sorted(clips.keys()) if clips is not None else []

    def __getitem__(self, clip_id: str) -> np.ndarray:
        """Features of one clip, (n, dim) float32."""
        return np.asarray(self._group(clip_id)["features"][...], dtype=np.float32)

    def labels(self, clip_id: str) -> dict[str, Any]:
        """Per-clip scalars (attrs) and per-row arrays stored next to the features."""
        group = self._group(clip_id)
        out: dict[str, Any] = {k: _to_python(v) for k, v in group.attrs.items()}
        for name, dataset in group.items():
            if name != "features":
                data = dataset[...]
                out[name] = data.astype(str) if dataset.dtype.kind == "O" else data
        return out

    @property
    def dim(self) -> int:
        return int(self._group(self.clip_ids[0])["features"].shape[1]) if self.clip_ids else 0

    def _group(self, clip_id: str) -> h5py.Group:
        try:
            return self._file["clips"][clip_id]
        except KeyError:
            raise KeyError(f"{self.path}: no clip {clip_id!r}") from None

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in set(self.clip_ids)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FeatureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _same(actual: Any, expected: Any) -> bool:
    numbers = (int, float)
    if isinstance(actual, numbers) and isinstance(expected, numbers):
        return actual == expected
    return str(actual) == str(expected)


def open_features(path: Path | str, expect: dict[str, Scalar] | None = None) -> FeatureReader:
    """Open a feature file, refusing a stale, foreign or incomplete one.

    `expect` maps attribute names (e.g. `backbone`, `spec`, `config_hash`, `dtype`,
    `preprocessing`) to the values the caller needs; any difference raises `StaleCacheError`
    naming the file, the key and both values.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no feature file; run the extract stage to make it")
    try:
        reader = FeatureReader(path)
    except OSError as e:
        raise StaleCacheError(f"{path}: not a readable HDF5 feature file ({e})") from None
    problems = []
    checks = {"format_version": FORMAT_VERSION, "complete": 1, **(expect or {})}
    for key, want in checks.items():
        if key not in reader.attrs:
            problems.append(f"attribute '{key}' is missing (expected {want!r})")
        elif not _same(reader.attrs[key], want):
            problems.append(f"attribute '{key}' is {reader.attrs[key]!r}, expected {want!r}")
    if problems:
        reader.close()
        raise StaleCacheError(
            f"{path}: stale or foreign feature cache: {'; '.join(problems)}. "
            "Re-run the extract stage for it (e.g. `dvc repro`) or delete the file."
        )
    return reader


def not_applicable_reason(path: Path, expect: dict[str, Scalar] | None = None) -> str | None:
    """Why the store at `path` is empty by design (`NOT_APPLICABLE`: its dataset has no clip of
    its modality), or None for a store with features. Opened as `open_features` opens it, so
    a stale store is refused here too."""
    with open_features(path, expect) as reader:
        reason = reader.attrs.get(NOT_APPLICABLE)
    return None if reason is None else f"{path.name}: {reason}"
