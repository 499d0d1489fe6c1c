"""Trained models rebuilt from their checkpoint folders: the one path from a checkpoint to a model.

A checkpoint (`models.checkpoint`) holds the model's recorded config, its state and provenance.
Models that run a pretrained backbone (or were trained on its features) record the backbone's
spec and config hash; the backbone is loaded from the spec and must hash the same, else
`ProvenanceMismatch`: predictions always use exactly the encoder the heads were trained on.

Recorded configs are rebuilt by `saved_config`, so a foreign or damaged record is one line naming
the file and the key. Keys that older checkpoints lack are filled explicitly, in one table per
model (`VA_MODEL_ADDED_KEYS`, `AV_MODEL_ADDED_KEYS`), with the values those older models had;
older baselines also recorded the fusion model's keys, which they never used (`av_model_config`).
A face/voice checkpoint also holds its `calibration`, read by `affectpipe.calibration`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import torch

from affectpipe.config import ConfigError, is_params_section, validate_section
from affectpipe.features.backbones import Backbone, load_backbone
from affectpipe.models.checkpoint import MODEL_FILE, load_checkpoint
from affectpipe.models.multimodal import FUSION_KEYS, AVEmotionModel, AVModelConfig
from affectpipe.models.va import VAModel, VAModelConfig, reads_block_cache
from affectpipe.problems import InputProblem

T = TypeVar("T")

# VA model config keys added after the first checkpoints, with the behaviour those had:
# no dropout on frame features, the CLS token as the frame feature.
VA_MODEL_ADDED_KEYS: dict[str, Any] = {"feature_dropout": 0.0, "pool": "cls"}
# VA pipelines renamed since: older checkpoints record the old name of the same model
VA_PIPELINE_RENAMED: dict[str, str] = {"probe": "frozen_mlp"}
# AV model config keys added later: the first checkpoints had the GELU projector and MLP head,
# the network classifier, no speaker normalisation and one voice vector per clip.
AV_MODEL_ADDED_KEYS: dict[str, Any] = {
    "projector": "mlp",
    "congruence": "mlp",
    "classifier": "network",
    "speaker_norm": "none",
    "voice_n_layers": None,
    "voice_layers": None,
}


class ProvenanceMismatch(ValueError):
    """A checkpoint's backbone provenance does not match the backbone that loads from its spec."""


def backbone_provenance(provenance: dict[str, Any], kind: str, source: Path) -> dict[str, Any]:
    """The `{backbone, spec, config_hash, ...}` entry for `kind`, searched one level deep."""
    candidates = [provenance, *[v for v in provenance.values() if isinstance(v, dict)]]
    for entry in candidates:
        if entry.get("backbone") == kind and "spec" in entry and "config_hash" in entry:
            return entry
    raise InputProblem(source, f"checkpoint provenance names no '{kind}' backbone (spec and "
                               f"config_hash); has keys {sorted(provenance)}")  # fmt: skip


def check_backbone(backbone: Backbone, entry: dict[str, Any], source: Path | str) -> Backbone:
    """`backbone` if its config and weights hashes are the ones `entry` recorded, else
    `ProvenanceMismatch` (one line naming what differs)."""
    what = f"{source}: made with {entry['backbone']} '{entry['spec']}'"
    fix = "re-extract features and retrain (dvc repro), or point the spec at the original model"
    if backbone.config_hash != entry["config_hash"]:
        raise ProvenanceMismatch(
            f"{what} with config hash {entry['config_hash'][:12]}, but that spec now loads a "
            f"backbone with config hash {backbone.config_hash[:12]}; {fix}"
        )
    recorded = entry.get("weights_hash")
    if recorded is None:
        raise ProvenanceMismatch(f"{what} records no weights hash (an older version made it); "
                                 f"{fix}")  # fmt: skip
    if backbone.weights_hash != recorded:
        raise ProvenanceMismatch(
            f"{what} with weights hash {recorded[:12]}, but that spec now loads other weights "
            f"(hash {backbone.weights_hash[:12]}, same config); {fix}"
        )
    return backbone


def check_store_weights(path: Path) -> None:
    """Refuse a feature store (or block cache) whose backbone spec now loads other weights
    than those it was made with: a local model folder overwritten, a hub name now resolving to
    another revision. The spec and settings checks (`open_features`) cannot see that; loading
    the backbone on the CPU and hashing it can (seconds at base size). A store that records no
    weights hash (openSMILE's, which has no weights) has none to check; a missing store is left
    to the reader that opens it, which names it."""
    from affectpipe.features.store import FeatureReader

    if not Path(path).is_file():
        return
    try:
        reader = FeatureReader(path)
    except OSError:
        return  # unreadable: `open_features` says so, naming the file
    attrs = reader.attrs
    reader.close()
    if "weights_hash" not in attrs:
        return
    try:
        backbone = load_backbone(attrs["backbone"], attrs["spec"], "cpu")
    except (OSError, ValueError) as e:
        raise ProvenanceMismatch(
            f"{path}: made with {attrs['backbone']} '{attrs['spec']}', which does not load here, "
            f"so the weights it was made with cannot be checked ({type(e).__name__}: {e})"
        ) from None
    check_backbone(backbone, attrs, path)


def load_checked_backbone(
    entry: dict[str, Any], device: torch.device | str, source: Path | str
) -> Backbone:
    """Load the backbone a checkpoint (or feature file) records; a different hash is an error."""
    return check_backbone(load_backbone(entry["backbone"], entry["spec"], device), entry, source)


def saved_config(cls: type[T], values: dict[str, Any], source: Path | str) -> T:
    """`cls` from a checkpoint's recorded config; a mismatch is an `InputProblem` naming the file
    and every offending key."""
    if is_params_section(cls):
        try:
            return validate_section(cls, values, "")
        except ConfigError as e:
            raise InputProblem(source, f"recorded {cls.__name__}: {e}") from None
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown, missing = sorted(set(values) - names), sorted(names - set(values))
    if unknown or missing:
        raise InputProblem(
            source, f"recorded {cls.__name__} has unknown key(s) {unknown}, lacks {missing}"
        )
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise InputProblem(source, f"recorded {cls.__name__} is invalid: {e}") from None


def va_model_config(recorded: dict[str, Any], source: Path | str) -> VAModelConfig:
    """A recorded VA model config, older records completed from `VA_MODEL_ADDED_KEYS` and
    their pipeline names brought up to date (`VA_PIPELINE_RENAMED`)."""
    config = {**VA_MODEL_ADDED_KEYS, **recorded}
    config["pipeline"] = VA_PIPELINE_RENAMED.get(config.get("pipeline"), config.get("pipeline"))
    return saved_config(VAModelConfig, config, source)


def build_va_model(
    cfg: VAModelConfig,
    inputs: dict[str, Any],
    source: Path | str,
    device: torch.device | str = "cpu",
    backbone: Backbone | None = None,
) -> VAModel:
    """A fresh VA model. lora/frozen_mlp run the CLIP backbone that `inputs` (the input file's
    provenance) names: `backbone` when the caller has loaded it already, else loaded here; its
    hash is checked either way."""
    if not reads_block_cache(cfg.pipeline):
        return VAModel(cfg)
    if backbone is None:
        backbone = load_checked_backbone(inputs, device, source)
    return VAModel(cfg, check_backbone(backbone, inputs, source).model)


def va_model_from(
    ckpt: dict[str, Any],
    source: Path | str,
    device: torch.device | str = "cpu",
    backbone: Backbone | None = None,
) -> VAModel:
    """The VA model a checkpoint payload (`load_checkpoint`) holds, on `device`."""
    cfg = va_model_config(ckpt["config"]["model"], source)
    model = build_va_model(cfg, ckpt["provenance"]["inputs"], source, device, backbone)
    model.to(device).load_checkpoint_state(ckpt["state_dict"])
    return model


def load_va_model(
    ckpt_dir: Path, device: torch.device | str = "cpu"
) -> tuple[VAModel, dict[str, Any]]:
    """Rebuild a VA model from a pretrain or finetune checkpoint folder: (model on `device`,
    the checkpoint payload)."""
    ckpt = load_checkpoint(ckpt_dir, map_location=device)
    return va_model_from(ckpt, ckpt_dir, device), ckpt


def av_model_config(recorded: dict[str, Any], source: Path | str) -> AVModelConfig:
    """A recorded AV model config, older records completed from `AV_MODEL_ADDED_KEYS`; a
    baseline's fusion keys are None (older baselines recorded values they never used)."""
    config = AV_MODEL_ADDED_KEYS | recorded
    if config.get("modality") in ("audio", "video"):
        config |= dict.fromkeys(FUSION_KEYS)
    return saved_config(AVModelConfig, config, source)


def load_av_model(
    ckpt_dir: Path, map_location: str | torch.device = "cpu"
) -> tuple[AVEmotionModel, dict[str, Any]]:
    """Rebuild a trained face/voice model; returns (model in eval mode on `map_location`,
    checkpoint payload with its config and provenance)."""
    payload = load_checkpoint(ckpt_dir, map_location=map_location)
    cfg = av_model_config(payload["config"], Path(ckpt_dir) / MODEL_FILE)
    model = AVEmotionModel(cfg).to(map_location)
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload
