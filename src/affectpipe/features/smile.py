"""openSMILE functionals (eGeMAPS, ComParE) of each clip's voice, as an audio feature store.

The field's standard hand-crafted acoustic features, beside the learned wav2vec2 embeddings:
eGeMAPS (Eyben et al. 2016, 88 functionals of pitch, loudness, jitter/shimmer, formants,
spectral slope ...) and ComParE 2016 (Schuller et al., 6373 functionals of 65 low-level
descriptors). The `opensmile` package runs its bundled SMILExtract on the in-memory waveform
(`Smile.process_signal`), one clip at a time: a clip's functionals depend on it alone, so
the store's bytes are the same whatever the number of worker processes. Every clip is one row
(`(1, dim)`), so readers treat the store like a pooled embedding store. Low-level descriptor
sequences are not stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from pydantic import PositiveInt

from affectpipe.config import params_section
from affectpipe.features.sources import SAMPLE_RATE, Plan
from affectpipe.features.store import FeatureWriter
from affectpipe.problems import InputProblem, ProblemLog, as_input_problem

# Backbone kind -> {openSMILE feature set: functionals per clip}; the kind names the store.
FEATURE_SETS: dict[str, dict[str, int]] = {
    "egemaps": {"eGeMAPSv02": 88, "eGeMAPSv01b": 88},
    "compare": {"ComParE_2016": 6373},
}
LEVEL = "Functionals"
_INCLUDE = re.compile(r"^\s*\\\{([^}\\]+)\}", re.MULTILINE)  # \{file.conf.inc}; not \{\cm[...]}


@params_section
class EgemapsConfig:
    """`extract.egemaps` in params.yaml."""

    feature_set: Literal["eGeMAPSv02", "eGeMAPSv01b"]
    batch_size: PositiveInt  # clips per task of a worker process


@params_section
class CompareConfig:
    """`extract.compare` in params.yaml."""

    feature_set: Literal["ComParE_2016"]
    batch_size: PositiveInt


SmileConfig = EgemapsConfig | CompareConfig
CONFIGS: dict[str, type[EgemapsConfig] | type[CompareConfig]] = {
    "egemaps": EgemapsConfig,
    "compare": CompareConfig,
}


@cache
def smile(feature_set: str) -> Any:
    """One `opensmile.Smile` per feature set and process (its SMILExtract setup is reused)."""
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet[feature_set],
        feature_level=opensmile.FeatureLevel[LEVEL],
    )


def config_files(feature_set: str) -> list[Path]:
    """The feature set's config file and every file it includes, in include order."""
    seen: list[Path] = []

    def visit(path: Path) -> None:
        path = path.resolve()
        if path in seen:
            return
        seen.append(path)
        for name in _INCLUDE.findall(path.read_text()):
            visit(path.parent / name.strip())

    visit(Path(smile(feature_set).config_path))
    return seen


def config_hash(feature_set: str) -> str:
    """sha256 of the feature set's config files (names relative to the main one, and bytes):
    an edited or replaced configuration makes stores made with the old one stale."""
    files = config_files(feature_set)
    root = files[0].parent
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{os.path.relpath(path, root)}|".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def functionals(feature_set: str, wave: np.ndarray, sample_rate: int, path: str) -> np.ndarray:
    """(1, dim) float32 functionals of one mono waveform; `InputProblem` naming `path` when the
    waveform or its functionals are not finite (a clip too short for the feature set's
    windows comes back as NaN)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or not len(wave):
        raise InputProblem(path, f"expected a non-empty mono waveform, got shape {wave.shape}")
    if not np.isfinite(wave).all():
        raise InputProblem(path, f"{int((~np.isfinite(wave)).sum())} non-finite sample(s)")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Segment too short", UserWarning)
        values = smile(feature_set).process_signal(wave, sample_rate).to_numpy(np.float32)
    bad = int((~np.isfinite(values)).sum())
    if bad:
        raise InputProblem(
            path,
            f"{bad} of {values.size} {feature_set} functionals are not finite "
            f"({len(wave)} samples: too short or degenerate audio)",
        )
    return values.reshape(1, -1)


def _read(path: str) -> tuple[np.ndarray, int]:
    """A WAV's samples and rate; `InputProblem` when the file does not decode."""
    try:
        return sf.read(path, dtype="float32", always_2d=False)
    except (OSError, RuntimeError, ValueError) as e:
        raise InputProblem(path, f"cannot decode ({type(e).__name__}: {e})") from e


def _batch(feature_set: str, paths: Sequence[str]) -> list[np.ndarray | str]:
    """Worker task: each file's functionals, or the problem with it (reported by the caller).
    Whatever fails on one file is that file's problem (`as_input_problem`); only errors of the
    run itself (out of memory, a full disk) stop the task."""
    out: list[np.ndarray | str] = []
    for path in paths:
        try:
            out.append(functionals(feature_set, *_read(path), path))
        except Exception as e:  # noqa: BLE001 - one file's failure costs no other file
            out.append(as_input_problem(path, e).problem)
    return out


def worker_count(tasks: int) -> int:
    """Every core this process may use, at most one per task."""
    return max(1, min(tasks, len(os.sched_getaffinity(0))))


def compute_functionals(
    plan: Plan, feature_set: str, batch_size: int, log: ProblemLog, workers: int, bar: Any = None
) -> dict[str, np.ndarray]:
    """{clip_id: (1, dim)} for the plan's audio items, in `workers` processes (batches of
    `batch_size` files); a clip whose audio is bad is reported to `log` (raise or skip)."""
    paths = [plan.items[c.start].path for c in plan.clips]
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    results: list[np.ndarray | str] = []
    if workers > 1:  # forked: a spawned worker would import the stage's torch and transformers
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            for done in pool.map(_batch, [feature_set] * len(batches), batches):
                results.extend(done)
                if bar is not None:
                    bar.update(len(done))
    else:
        for batch in batches:
            results.extend(done := _batch(feature_set, batch))
            if bar is not None:
                bar.update(len(done))
    out: dict[str, np.ndarray] = {}
    for clip, path, result in zip(plan.clips, paths, results, strict=True):
        if isinstance(result, str):
            log.report(InputProblem(path, result))
        else:
            out[clip.clip_id] = result
    return out


def write_store(
    plan: Plan, rows: dict[str, np.ndarray], out: Path, attrs: dict[str, Any]
) -> list[str]:
    """The store of `rows` (clip order, the plan's labels beside them); the clips written."""
    with FeatureWriter(out, attrs) as writer:
        for clip in plan.clips:
            if clip.clip_id in rows:
                writer.add(clip.clip_id, rows[clip.clip_id], **clip.labels)
    return sorted(rows)


def provenance(
    kind: str, cfg: SmileConfig, dataset: str, settings: str, versions: dict[str, str]
) -> dict[str, Any]:
    """File attributes, the same keys as a backbone store's where they apply: `spec` is the
    feature set, `config_hash` its configuration files' (no weights: `weights_hash` absent)."""
    import opensmile

    prep = {
        "feature_set": cfg.feature_set,
        "feature_level": LEVEL,
        "sample_rate": SAMPLE_RATE,
        "input": "preprocessed float32 mono waveform, process_signal",
        "opensmile": opensmile.__version__,
    }
    return {
        "backbone": kind,
        "spec": cfg.feature_set,
        "config_hash": config_hash(cfg.feature_set),
        "model_class": f"opensmile.Smile {cfg.feature_set} {LEVEL}",
        "pooling": "openSMILE functionals over the whole clip",
        "dim": FEATURE_SETS[kind][cfg.feature_set],
        "dataset": dataset,
        "dtype": "float32",
        "precision": "float32",
        "preprocessing": json.dumps(prep, sort_keys=True),
        "versions": json.dumps({**versions, "opensmile": opensmile.__version__}, sort_keys=True),
        "source_settings": settings,
    }
