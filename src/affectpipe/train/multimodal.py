"""Fitting the face/voice emotion and congruence models on cached clip embeddings, one fold.

One run trains one variant (`fusion`, `audio`, `video`) on one speaker-independent split of one
dataset with the shared loop (`affectpipe.train.loop.fit`), keeping the epoch with the best
`val/score`. The pairs and their targets are `affectpipe.data.av_dataset`'s, the loss
`affectpipe.losses.av_loss`. Training never reads the test split: `evaluate` scores it.
After training, the kept model is calibrated on the same validation pairs
(`affectpipe.calibration`) and the calibration is added to its checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import PartialState
from torch.utils.data import DataLoader

from affectpipe.av_inference import collect_outputs
from affectpipe.calibration import Calibration, CalibrationParams, fit_calibration, head_targets
from affectpipe.config import ConfigError, from_section, params_section
from affectpipe.data.av_dataset import AVData, PairDataset, load_av_data, pair_frame
from affectpipe.data.av_pairs import dataset_classes, feature_paths
from affectpipe.data.pairs import PairConfig
from affectpipe.losses import LossConfig, av_loss, loss_weights
from affectpipe.metrics import av_test_metrics
from affectpipe.models.checkpoint import add_to_checkpoint
from affectpipe.models.load import load_av_model
from affectpipe.models.multimodal import (
    AVEmotionModel,
    AVModelConfig,
    AVModelParams,
    Classifier,
    FusionParams,
    VoiceLayersParams,
)
from affectpipe.problems import InputProblem, ProblemLog
from affectpipe.seeding import seed_everything
from affectpipe.train.loop import FitResult, LoopConfig, OptimConfig, fit

Tensors = dict[str, torch.Tensor]
VAL_KEYS = (
    "accuracy",
    "uar",
    "macro_f1",
    "face_accuracy",
    "voice_accuracy",
    "congruence_auc",
    "congruence_accuracy",
)


@params_section
class AVTrainParams(OptimConfig):
    """The `train_multimodal.train` params: the shared loop's knobs and the batch size."""

    batch_size: int


@params_section
class TrainMultimodalConfig:
    """The `train_multimodal` keys every model reads: all but the per-model sub-sections."""

    face_features: str  # backbone names of the cached features
    voice_features: str
    folds: Literal["configured", "all"]  # configured: preprocessing's test fold | all: every fold
    bad_input: Literal["strict", "skip"]  # pairs whose clips lack features
    voice_layers: VoiceLayersParams  # the hidden states a layered voice store is read at
    model: AVModelParams
    loss: LossConfig
    train: AVTrainParams
    calibration: CalibrationParams


@params_section
class BaselineOwnParams:
    """`train_multimodal.audio` or `.video`: what only that baseline reads."""

    classifier: Classifier  # network (the `model` branches) | linear (logistic regression)
    w_emotion: float  # its one loss term: its modality's emotion CE


@params_section
class FusionOwnParams(FusionParams):
    """`train_multimodal.fusion`: what only the fusion model reads: its fusion and congruence
    head (`FusionParams`) and the weights of its loss terms."""

    classifier: Classifier  # network | linear (logistic regression per head; needs concat)
    w_emotion: float  # fused emotion CE (congruent pairs)
    w_modality: float  # face CE + voice CE (every pair)
    w_congruence: float  # congruence BCE (every pair)


OwnParams = FusionOwnParams | BaselineOwnParams
OWN_PARAMS: dict[str, type[FusionOwnParams] | type[BaselineOwnParams]] = {
    "fusion": FusionOwnParams,
    "audio": BaselineOwnParams,
    "video": BaselineOwnParams,
}


def stage_config(values: dict[str, Any], modality: str) -> tuple[TrainMultimodalConfig, OwnParams]:
    """The `train_multimodal` section as one model reads it: the keys every model reads, and the
    model's own sub-section. The other models' sub-sections are not read: dvc.yaml lists for
    each model exactly these keys, so a fusion knob retrains fusion only."""
    name = "train_multimodal"
    if modality not in OWN_PARAMS:
        raise ValueError(f"unknown model '{modality}'; valid: {list(OWN_PARAMS)}")
    if not isinstance(values, dict) or not isinstance(values.get(modality), dict):
        raise ConfigError(f"params.yaml: '{name}.{modality}' must be a mapping of its own keys")
    shared = {k: v for k, v in values.items() if k not in OWN_PARAMS}
    own = from_section(OWN_PARAMS[modality], values[modality], f"{name}.{modality}")
    return from_section(TrainMultimodalConfig, shared, name), own


def loss_terms(modality: str, own: OwnParams) -> dict[str, float]:
    """The weight of each head's loss term, in summing order: the fusion model's four heads, or
    a baseline's one emotion head (its modality's)."""
    if isinstance(own, FusionOwnParams):
        return {
            "emotion": own.w_emotion,
            "face_emotion": own.w_modality,
            "voice_emotion": own.w_modality,
            "congruence": own.w_congruence,
        }
    return {"face_emotion" if modality == "video" else "voice_emotion": own.w_emotion}


def model_config(
    cfg: TrainMultimodalConfig,
    own: OwnParams,
    modality: str,
    face_dim: int,
    voice_dim: int,
    classes: list[int],
    voice_n_layers: int | None,
) -> AVModelConfig:
    """The model of one variant: the shared branches' params and, for fusion, its own;
    `voice_n_layers`: the hidden states per clip of a layered voice store (None: one vector)."""
    fusion = own if isinstance(own, FusionOwnParams) else None
    return AVModelConfig.from_params(
        cfg.model, fusion, modality, face_dim, voice_dim, classes, own.classifier,
        voice_n_layers, cfg.voice_layers,
    )  # fmt: skip


def loop_config(train: AVTrainParams, seed: int) -> LoopConfig:
    """The shared loop's config from the `train` params; selection is on `val/score`."""
    return LoopConfig.of(train, monitor="val/score", mode="max", seed=seed)


def validation_score(m: dict, modality: str) -> float:
    """Model selection: emotion UAR; the fusion model averages it with congruence ROC-AUC."""
    if modality == "fusion" and m.get("congruence_auc") is not None:
        return (m["uar"] + m["congruence_auc"]) / 2
    return m["uar"]


def step_fn(
    model: AVEmotionModel, batch: Tensors, terms: dict[str, float], weights: Tensors
) -> dict[str, torch.Tensor]:
    """One forward pass for `loop.fit`: {"loss": total, "loss_<term>": each weighted term}."""
    out = model(face=batch["face"], voice=batch["voice"])
    loss, parts = av_loss(out, batch, terms, weights)
    return {"loss": loss, **{f"loss_{k}": v for k, v in parts.items()}}


@torch.no_grad()
def eval_fn(
    model: AVEmotionModel, loader: DataLoader, accelerator, dataset: PairDataset, classes: list[int]
) -> dict[str, float]:
    """Validation metrics for `loop.fit` over the whole set (gathered across processes)."""
    outputs = collect_outputs(model, loader, accelerator.gather_for_metrics)
    m = av_test_metrics(pair_frame(dataset, outputs), classes)
    out = {k: float(m[k]) for k in VAL_KEYS if m.get(k) is not None}
    out["score"] = validation_score(m, accelerator.unwrap_model(model).cfg.modality)
    return out


def calibrate_on_validation(ckpt_dir: Path, data: AVData, params: CalibrationParams) -> Calibration:
    """The calibration of the checkpoint in `ckpt_dir`, fitted on its validation pairs. The
    model is loaded as `evaluate` and `predict` load it (CPU, float32): the fit sees the
    probabilities they will calibrate."""
    model, _ = load_av_model(ckpt_dir)
    val = data.splits["val"]
    outputs = collect_outputs(model, DataLoader(val, batch_size=256, shuffle=False))
    return fit_calibration(outputs, head_targets(pair_frame(val, outputs)), params)


def fit_av(
    model: AVEmotionModel,
    data: AVData,
    loss_cfg: LossConfig,
    terms: dict[str, float],
    loop_cfg: LoopConfig,
    batch_size: int,
    ckpt_dir: Path,
    live_dir: Path | None = None,
    provenance: dict | None = None,
    label: str = "",
) -> FitResult:
    """Train with the shared loop (`affectpipe.train.loop.fit`); select on `val/score`. `terms`:
    the weight of each head's loss term (`loss_terms`)."""
    weights = loss_weights(data.splits["train"], data.classes, loss_cfg)
    clips = data.splits["train"]  # statistics over clips, each once: congruent pairs
    own = clips.congruent > 0
    model.set_feature_stats(clips.face[own], clips.voice[own])
    model.set_global_stats(*data.global_stats)
    train = DataLoader(
        data.splits["train"],
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(loop_cfg.seed),
    )
    val = DataLoader(data.splits["val"], batch_size=256, shuffle=False)

    def step(m, batch):
        w = {k: v.to(batch["face"].device) for k, v in weights.items()}
        return step_fn(m, batch, terms, w)

    def evaluate_val(m, loader, acc):
        return eval_fn(m, loader, acc, data.splits["val"], data.classes)

    return fit(
        model,
        train,
        val,
        step,
        evaluate_val,
        loop_cfg,
        live_dir,
        ckpt_dir,
        config=asdict(model.cfg),
        provenance=provenance,
        label=label,
    )


def train_one(
    modality: str,
    dataset: str,
    cfg: TrainMultimodalConfig,
    own: OwnParams,
    loop_cfg: LoopConfig,
    processed_dir: Path,
    features_dir: Path,
    ckpt_dir: Path,
    live_dir: Path | None,
    test_fold: int | None = None,
    pair_cfg: PairConfig | None = None,
    expect: dict[str, dict] | None = None,
) -> dict:
    """Train one model for one test fold (None: preprocessing's) into `ckpt_dir`; returns its
    report: validation metrics of the best epoch, pair counts and skipped inputs. `expect`:
    what the face and voice stores must record (`face_features`, `voice_features`:
    `features.extract.expected_attrs`); a store made otherwise is refused."""
    classes = dataset_classes(dataset)
    seed = loop_cfg.seed
    log = ProblemLog(cfg.bad_input)
    face_path, voice_path = feature_paths(
        features_dir, dataset, cfg.face_features, cfg.voice_features
    )
    by_speaker = cfg.model.speaker_norm == "standardize"
    data = load_av_data(
        processed_dir, face_path, voice_path, classes, log, test_fold, pair_cfg, seed, expect,
        by_speaker=by_speaker, modality=modality,
    )  # fmt: skip
    seed_everything(seed)  # torch's start-up seed is random: seed before the weights exist
    try:
        mcfg = model_config(cfg, own, modality, *data.dims, classes, data.voice_layers)
    except ValueError as e:
        raise InputProblem(voice_path, str(e)) from None
    model = AVEmotionModel(mcfg)
    provenance = {
        "dataset": dataset,
        "modality": modality,
        "test_fold": data.test_fold,
        "face_file": face_path.name,
        "voice_file": voice_path.name,
        "pairs": asdict(pair_cfg) if pair_cfg else None,
        "seed": seed,
        **data.provenance,
    }
    result = fit_av(
        model,
        data,
        loss_cfg=cfg.loss,
        terms=loss_terms(modality, own),
        loop_cfg=loop_cfg,
        batch_size=cfg.train.batch_size,
        ckpt_dir=ckpt_dir,
        live_dir=live_dir,
        provenance=provenance,
        label=f"{modality} {dataset} fold {data.test_fold}",
    )
    calibration = calibrate_on_validation(ckpt_dir, data, cfg.calibration)
    if PartialState().is_main_process:  # the process that wrote the checkpoint
        add_to_checkpoint(ckpt_dir, "calibration", calibration.to_json())
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "test_fold": data.test_fold,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "parameters": n_params,
        "val": {
            k.removeprefix("val/"): v
            for k, v in result.best_metrics.items()
            if k.startswith("val/")
        },
        "calibration": calibration.to_json(),
        "voice_layer_weights": load_av_model(ckpt_dir)[0].layer_weights(),  # the kept epoch's
        "pairs": {s: len(d) for s, d in data.splits.items()},
        "dropped_pairs": data.dropped_pairs,
        "skipped": log.to_json(),
    }
