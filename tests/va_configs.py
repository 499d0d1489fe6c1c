"""VA configs for tests: params.yaml's own sections, with the changes a test names.

The model baseline pools the CLS token (params.yaml's default) and standardises per dimension
(params.yaml's `auto` needs a resolved choice); tests change the rest.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from affectpipe.config import from_section, load_params
from affectpipe.data.image_size import preprocess_values
from affectpipe.data.windows import WindowConfig
from affectpipe.inference import VASettings
from affectpipe.models.contrastive import ContrastiveConfig
from affectpipe.models.va import VAArchitecture, VAModelConfig
from affectpipe.train.loop import LoopConfig
from affectpipe.train.va import FinetuneConfig, FinetuneStageConfig, PretrainConfig
from tests.pipeline_repo import REPO

PARAMS = load_params(REPO / "params.yaml")


def pretrain_config(**changes: Any) -> PretrainConfig:
    """`pretrain` from params.yaml; `window=`, `contrastive=`, `model=` take dicts of changes."""
    section = from_section(PretrainConfig, PARAMS["pretrain"], "pretrain")
    nested = {k: replace(getattr(section, k), **changes.pop(k))
              for k in ("window", "contrastive", "model") if k in changes}  # fmt: skip
    return replace(section, **nested, **changes)


def finetune_config(**changes: Any) -> FinetuneStageConfig:
    """`finetune` from params.yaml; `window=`, `objective=` take dicts of changes."""
    section = from_section(FinetuneStageConfig, PARAMS["finetune"], "finetune")
    nested = {k: replace(getattr(section, k), **changes.pop(k))
              for k in ("window", "objective") if k in changes}  # fmt: skip
    return replace(section, **nested, **changes)


def architecture(**changes: Any) -> VAArchitecture:
    arch = from_section(VAArchitecture, PARAMS["pretrain"]["model"], "pretrain.model")
    return replace(arch, **{"pool": "cls", "standardize": "diag", **changes})


def model_config(pipeline: str, in_dim: int, **changes: Any) -> VAModelConfig:
    return VAModelConfig.build(pipeline, in_dim, architecture(**changes))


def contrastive(**changes: Any) -> ContrastiveConfig:
    return replace(pretrain_config().contrastive, **changes)


def window(**changes: Any) -> WindowConfig:
    return replace(finetune_config().window, **changes)


def objective(**changes: Any) -> FinetuneConfig:
    return replace(finetune_config().objective, **changes)


def loop(**changes: Any) -> LoopConfig:
    """finetune's loop knobs, selecting on `val/loss` unless told otherwise."""
    base = LoopConfig.of(finetune_config(), monitor="val/loss", mode="min", seed=PARAMS["seed"])
    return replace(base, **changes)


def va_settings() -> VASettings:
    afewva = preprocess_values(PARAMS, "afewva")  # `auto` crop_size: the tiny CLIP's 64
    return VASettings(crop_size=afewva["crop_size"], margin=afewva["margin"])
