"""Fitting the valence/arousal models: the two stages, each one call of the shared loop.

Stage 1 (`pretrain_va`) trains the contrastive space (LoRA, temporal transformer, projector,
temporal head) with `ContrastivePretrainer`, keeping the epoch of lowest validation loss; the
linear probe has no contrastive space, so its stage 1 only writes the starting checkpoint
(training feature statistics, a zero linear layer) that stage 2 starts from, keeping one DAG
shape for every variant. Stage 2
(`finetune_va`) starts from its checkpoint and trains the regression path on
`w_mse * MSE + w_ccc * (1 - CCC)`, selecting the epoch on the validation mean CCC. Stage 2 can
also start from fresh weights (`Scratch`), with the same folds and budget, to measure what stage 1
adds. Each stage trains every fold of the split (`train_folds`) in one process: the imports
cost more than a fold's training. The test split is read only by the evaluate stage, after all
choices are made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from affectpipe import metrics
from affectpipe.config import params_section
from affectpipe.data.splits import SplitConfig
from affectpipe.data.va_clips import (
    VAFold,
    check_same_inputs,
    fold_name,
    input_provenance,
    open_inputs,
    split_clips,
    va_folds,
)
from affectpipe.data.windows import ClipData, WindowConfig, eval_loader, train_loader
from affectpipe.losses import va_regression_loss
from affectpipe.models.checkpoint import save_checkpoint
from affectpipe.models.contrastive import ContrastiveConfig, ContrastivePretrainer
from affectpipe.models.load import build_va_model, load_va_model
from affectpipe.models.va import (
    VAArchitecture,
    VAModel,
    VAModelConfig,
    has_contrastive_stage,
    reads_block_cache,
    resolve_standardize,
)
from affectpipe.problems import InputProblem
from affectpipe.seeding import seed_everything
from affectpipe.train.loop import FitResult, LoopConfig, OptimConfig, fit, open_live
from affectpipe.va_inference import frame_values, window_outputs

STAGE1_PARTS = ("lora", "temporal", "projector", "temporal_head")
STAGE2_PARTS = ("lora", "temporal", "temporal_head", "regressor")


@params_section
class PretrainConfig(OptimConfig):
    """The `pretrain` params section: the loop's knobs, windows, losses and architecture."""

    window: WindowConfig
    contrastive: ContrastiveConfig
    model: VAArchitecture


@params_section
class FinetuneConfig:
    """Stage-2 loss weights and what trains besides the regression head (`finetune.objective`)."""

    w_mse: float
    w_ccc: float
    train_projector: bool  # false keeps the stage-1 contrastive space as it is


@params_section
class FinetuneStageConfig(OptimConfig):
    """The `finetune` params section: the loop's knobs, windows and the objective."""

    window: WindowConfig
    objective: FinetuneConfig


@torch.no_grad()
def feature_stats(
    model: VAModel, clips: list[ClipData], covariance: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and variance (D,) or covariance (D, D) over every frame of `clips` of the
    features the heads read (`encode`), accumulated in float64 one clip at a time. Taken
    before training: LoRA starts as the identity, so lora and frozen_mlp share them."""
    device = next(model.parameters()).device
    n, total, second = 0, 0.0, 0.0
    for c in tqdm(clips, desc="feature stats", leave=False):
        x = torch.from_numpy(c.x).to(device)[None]  # (1, n, dim)
        f = model.encode(x)[0].double()  # (n, D)
        total = total + f.sum(0)
        second = second + (f.T @ f if covariance else f.pow(2).sum(0))  # (D, D) or (D,)
        n += f.shape[0]
    mean = total / n
    second = second / n - (torch.outer(mean, mean) if covariance else mean.pow(2))
    return mean.float().cpu(), second.float().cpu()


def frame_dim(cfg: VAModelConfig, attrs: dict[str, Any]) -> int:
    """Size of the frame feature the heads read, from the input file's attributes."""
    if reads_block_cache(cfg.pipeline) and cfg.pool == "tokens":
        return int(attrs["tokens"]) * cfg.in_dim
    return cfg.in_dim


def _loss_eval(model, loader, acc) -> dict[str, float]:
    """Mean of each stage-1 loss over the validation windows (batch means, all processes)."""
    sums: dict[str, float] = {}
    n = 0
    for batch in loader:
        out = model(batch)
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n += 1
    names = sorted(sums)
    means = torch.tensor([sums[k] / max(n, 1) for k in names], device=acc.device)
    means = acc.reduce(means, reduction="mean")
    return {k: float(v) for k, v in zip(names, means.tolist(), strict=True)}


def train_folds(
    split: SplitConfig, ckpt_dir: Path, live_dir: Path | None,
    train_one: Callable[[VAFold | None, Path, Path | None], FitResult],
) -> dict[str, FitResult]:  # fmt: skip
    """`train_one(fold, ckpt, live)` for every fold of `split` (`va_folds`), each into its own
    `fold<k>/` under `ckpt_dir` and `live_dir`; results by fold name."""
    return {
        fold_name(f): train_one(f, ckpt_dir / fold_name(f),
                                live_dir / fold_name(f) if live_dir is not None else None)
        for f in va_folds(split)
    }  # fmt: skip


def _fold_record(fold: VAFold | None) -> dict[str, Any]:
    return {"fold": fold.record() if fold is not None else None}


def fresh_va_model(
    inputs: Path, pipeline: str, arch: VAArchitecture, fold: VAFold | None
) -> tuple[VAModel, dict[str, Any], list[ClipData], list[ClipData]]:
    """A new VA model for `inputs` with feature statistics from `fold`'s training clips (not
    learned: stage 1 takes them, and so does a stage 2 from scratch); (model, its input
    provenance, training clips, validation clips)."""
    with open_inputs(inputs, pipeline) as reader:
        prov_inputs = input_provenance(reader)
        model_cfg = VAModelConfig.build(pipeline, int(reader.attrs["dim"]), arch)
        train, val = split_clips(reader, "train", fold), split_clips(reader, "val", fold)
        n_frames = sum(len(c) for c in train)
        mode = resolve_standardize(model_cfg.standardize, frame_dim(model_cfg, reader.attrs),
                                   n_frames)  # fmt: skip
    model_cfg = replace(model_cfg, standardize=mode)
    model = build_va_model(model_cfg, prov_inputs, inputs)
    if mode != "none":
        model.set_feature_stats(*feature_stats(model, train, covariance=mode == "whiten"))
    return model, prov_inputs, train, val


def pretrain_va(
    inputs: Path,
    pipeline: str,
    cfg: PretrainConfig,
    seed: int,
    ckpt_dir: Path,
    live_dir: Path | None,
    params: dict[str, Any],
    fold: VAFold | None = None,
) -> FitResult:
    """Stage 1 on one fold (None: the stored split): contrastive pretraining; the best epoch
    by validation loss is checkpointed. A pipeline without a contrastive stage (the linear
    probe) gets its starting checkpoint and an empty `live_dir`, and a result with no epochs.
    `params`: the params the stage read, recorded in the checkpoint."""
    seed_everything(seed)  # torch's start-up seed is random: seed before the weights exist
    model, prov_inputs, train, val = fresh_va_model(inputs, pipeline, cfg.model, fold)
    prov = {"inputs": prov_inputs, "inputs_file": str(inputs), "params": params,
            "stage": "pretrain", **_fold_record(fold)}  # fmt: skip
    config = {"model": model.cfg.record(), "contrastive": asdict(cfg.contrastive),
              "window": asdict(cfg.window)}  # fmt: skip
    if not has_contrastive_stage(pipeline):  # nothing to pretrain: stage 2 starts from here
        save_checkpoint(ckpt_dir, model.checkpoint_state(), config, prov, -1, {})
        live = open_live(live_dir)
        if live is not None:
            live.end()
        return FitResult(best_epoch=-1, best_value=float("nan"), best_metrics={})
    model.trainable_parameters(STAGE1_PARTS)
    wrapper = ContrastivePretrainer(model, cfg.contrastive)
    loop = LoopConfig.of(cfg, monitor="val/loss", mode="min", seed=seed)
    return fit(
        wrapper, train_loader(train, cfg.window, seed), eval_loader(val, cfg.window),
        lambda m, b: m(b), _loss_eval, loop, live_dir, ckpt_dir,
        config=config, provenance=prov, label=f"pretrain {pipeline} {fold_name(fold)}",
    )  # fmt: skip


def clip_va_metrics(clips: list[ClipData], pred: list[np.ndarray]) -> dict[str, float]:
    """Flat regression metrics over all frames of `clips` (the validation score)."""
    true = np.concatenate([c.va for c in clips])
    ids = np.concatenate([np.full(len(c), i) for i, c in enumerate(clips)])
    return metrics.va_report(true, np.concatenate(pred), ids)


@dataclass(frozen=True)
class Scratch:
    """Stage 2 without stage 1: a fresh `pipeline` model of architecture `model`."""

    pipeline: str
    model: VAArchitecture


def finetune_va(
    inputs: Path,
    init: Path | Scratch,
    cfg: FinetuneStageConfig,
    seed: int,
    ckpt_dir: Path,
    live_dir: Path | None,
    params: dict[str, Any],
    fold: VAFold | None = None,
) -> FitResult:
    """Stage 2 on one fold (None: the stored split): CCC + MSE fine-tuning from the stage-1
    checkpoint `init` of the same fold, or from fresh weights (`Scratch`); selects on val mean
    CCC."""
    seed_everything(seed)  # heads the stage-1 checkpoint does not hold start seeded
    if isinstance(init, Scratch):
        model, prov_inputs, train, val = fresh_va_model(inputs, init.pipeline, init.model, fold)
        prov = {"inputs": prov_inputs, "init": "scratch"}
        config = {"model": model.cfg.record()}
    else:
        model, ckpt = load_va_model(init)
        if ckpt["provenance"].get("fold") != _fold_record(fold)["fold"]:
            raise InputProblem(init, f"stage-1 checkpoint of another fold than {fold_name(fold)}")
        with open_inputs(inputs, model.cfg.pipeline) as reader:
            check_same_inputs(ckpt, reader)
            train, val = split_clips(reader, "train", fold), split_clips(reader, "val", fold)
        prov, config = {**ckpt["provenance"], "init": str(init)}, dict(ckpt["config"])
    ft, window = cfg.objective, cfg.window
    model.trainable_parameters(STAGE2_PARTS + (("projector",) if ft.train_projector else ()))

    def step(m, b):
        out = m(b["x"], b["valid"])
        return va_regression_loss(out["va"], b["va"], b["valid"], ft.w_mse, ft.w_ccc)

    def evaluate(m, loader, acc):
        return clip_va_metrics(val, frame_values(val, window_outputs(m, loader, acc)))

    loop = LoopConfig.of(cfg, monitor="val/ccc_mean", mode="max", seed=seed)
    prov |= {"stage": "finetune", "inputs_file": str(inputs), "params": params,
             **_fold_record(fold)}  # fmt: skip
    config |= {"finetune": asdict(ft), "window": asdict(window)}
    return fit(
        model, train_loader(train, window, seed), eval_loader(val, window), step, evaluate,
        loop, live_dir, ckpt_dir, config=config, provenance=prov,
        label=f"finetune {model.cfg.pipeline} {fold_name(fold)}",
    )  # fmt: skip
