"""Trained models rebuilt from their checkpoint folders: the one path from checkpoint to model.

Training, evaluation and inference on new videos all load through here, so a checkpoint
written by an older version is read the same way everywhere.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import torch

from affectpipe.models.multimodal import AVEmotionModel, AVModelConfig
from affectpipe.problems import InputProblem
from affectpipe.train.checkpoint import MODEL_FILE, load_checkpoint

T = TypeVar("T")

# AV checkpoints written before these options existed used the GELU projector and the MLP head
AV_LEGACY_CONFIG: dict[str, Any] = {"projector": "mlp", "congruence": "mlp"}


def saved_config(cls: type[T], values: dict[str, Any], source: Path) -> T:
    """`cls` from a checkpoint's saved config; a mismatch is an `InputProblem` naming the file."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown, missing = sorted(set(values) - names), sorted(names - set(values))
    if unknown or missing:
        raise InputProblem(
            source, f"saved {cls.__name__} has unknown key(s) {unknown}, lacks {missing}"
        )
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise InputProblem(source, f"saved {cls.__name__} is invalid: {e}") from None


def load_av_model(
    ckpt_dir: Path, map_location: str | torch.device = "cpu"
) -> tuple[AVEmotionModel, dict[str, Any]]:
    """Rebuild a trained face/voice model; returns (model in eval mode on `map_location`,
    checkpoint payload with its config and provenance)."""
    payload = load_checkpoint(ckpt_dir, map_location=map_location)
    config = AV_LEGACY_CONFIG | payload["config"]
    cfg = saved_config(AVModelConfig, config, Path(ckpt_dir) / MODEL_FILE)
    model = AVEmotionModel(cfg).to(map_location)
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload
