"""Checkpoints: model config + state dict + provenance, in one folder that DVC tracks.

`model.pt` holds everything needed to rebuild the model; `checkpoint.json` repeats the config,
provenance, epoch and metrics as text, so `git diff`/`dvc diff` readers need no torch.
Entries fitted after training (the face/voice models' `calibration`) are added to both by
`add_to_checkpoint`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from affectpipe.problems import NOT_APPLICABLE, InputProblem, atomic_path, write_json

MODEL_FILE = "model.pt"
META_FILE = "checkpoint.json"
NOT_APPLICABLE_FILE = "not_applicable.json"  # in place of a model the data cannot support
KEYS = ("config", "provenance", "state_dict", "epoch", "metrics")


def save_checkpoint(
    ckpt_dir: Path,
    state: dict[str, torch.Tensor],
    config: dict[str, Any],
    provenance: dict[str, Any],
    epoch: int,
    metrics: dict[str, float],
) -> None:
    """Write `model.pt` and `checkpoint.json` into `ckpt_dir`, each via a temporary name.

    Non-finite weights are refused (a diverged run must not leave a checkpoint that predicts
    NaN); non-finite metrics (e.g. Pearson's r of a constant prediction) are recorded as null.
    """
    ckpt_dir = Path(ckpt_dir)
    cpu = {k: v.detach().cpu() for k, v in state.items()}
    bad = next((k for k, v in cpu.items() if v.is_floating_point() and not v.isfinite().all()),
               None)  # fmt: skip
    if bad is not None:
        raise ValueError(f"{ckpt_dir}: refusing to save non-finite weights ('{bad}'): training "
                         f"diverged; check the inputs for NaN/inf or lower the lr")  # fmt: skip
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": config,
        "provenance": provenance,
        "state_dict": cpu,
        "epoch": epoch,
        "metrics": {k: v if math.isfinite(v) else None for k, v in metrics.items()},
    }
    _write(ckpt_dir, payload)


def add_to_checkpoint(ckpt_dir: Path, key: str, value: Any) -> None:
    """Add (or replace) a JSON-able entry `key` in an existing checkpoint, in both files."""
    if key in KEYS:
        raise ValueError(f"'{key}' is written by save_checkpoint, not added afterwards")
    payload = load_checkpoint(ckpt_dir)
    payload[key] = value
    _write(Path(ckpt_dir), payload)


def _write(ckpt_dir: Path, payload: dict[str, Any]) -> None:
    """`model.pt` and its JSON, each via a temporary name, so a reader never sees half a file;
    metadata that JSON cannot hold fails before either file changes."""
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    json.dumps(meta, allow_nan=False)
    with atomic_path(ckpt_dir / MODEL_FILE) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)  # a file object: torch names the archive after a path (the pid)
    write_json(ckpt_dir / META_FILE, meta)


def load_checkpoint(ckpt_dir: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint folder; a missing or foreign file is an `InputProblem`."""
    path = Path(ckpt_dir) / MODEL_FILE
    if not path.is_file():
        raise InputProblem(path, "no checkpoint here (run the training stage that writes it)")
    payload = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(payload, dict) or set(KEYS) - set(payload):
        raise InputProblem(path, f"not an affectpipe checkpoint (expected keys {list(KEYS)})")
    return payload


def write_not_applicable(ckpt_dir: Path, model: str, dataset: str, reason: str) -> None:
    """Record, in place of a checkpoint, that `model` cannot be trained on `dataset` and why
    (an audio-only release has no face for the video and fusion models): evaluate reports it
    and `predict` names it, and no stage fails on it."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    record = {"model": model, "dataset": dataset, NOT_APPLICABLE: reason}
    write_json(ckpt_dir / NOT_APPLICABLE_FILE, record)


def not_applicable(ckpt_dir: Path) -> str | None:
    """The reason recorded by `write_not_applicable`, or None for a trained model's folder."""
    path = ckpt_dir / NOT_APPLICABLE_FILE
    if not path.is_file():
        return None
    return str(json.loads(path.read_text())[NOT_APPLICABLE])
