"""Fitting the valence/arousal models: the two stages, each one call of the shared loop.

Stage 1 (`pretrain_va`) trains the contrastive space (LoRA, temporal transformer, projector,
temporal head) with `ContrastivePretrainer`, keeping the epoch of lowest validation loss; the
linear probe has no contrastive space, so its stage 1 only writes the starting checkpoint
(training feature statistics, a zero linear layer) that stage 2 starts from, keeping one DAG
shape for every variant. Stage 2
(`finetune_va`) starts from its checkpoint and trains the regression path on
`w_mse * MSE + w_ccc * (1 - CCC)`, selecting the epoch on the validation mean CCC. The test
split is read only by the evaluate stage, after all choices are made.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from affectpipe import metrics
from affectpipe.config import params_section
from affectpipe.data.va_clips import check_same_inputs, input_provenance, open_inputs, split_clips
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


def pretrain_va(
    inputs: Path,
    pipeline: str,
    cfg: PretrainConfig,
    seed: int,
    ckpt_dir: Path,
    live_dir: Path | None,
    params: dict[str, Any],
) -> FitResult:
    """Stage 1: contrastive pretraining; the best epoch by validation loss is checkpointed.
    A pipeline without a contrastive stage (the linear probe) gets its starting checkpoint
    and an empty `live_dir`, and a result with no epochs. `params`: the params the stage read,
    recorded in the checkpoint."""
    seed_everything(seed)  # torch's start-up seed is random: seed before the weights exist
    with open_inputs(inputs, pipeline) as reader:
        prov = {"inputs": input_provenance(reader), "params": params, "stage": "pretrain"}
        model_cfg = VAModelConfig.build(pipeline, int(reader.attrs["dim"]), cfg.model)
        train, val = split_clips(reader, "train"), split_clips(reader, "val")
        n_frames = sum(len(c) for c in train)
        mode = resolve_standardize(model_cfg.standardize, frame_dim(model_cfg, reader.attrs),
                                   n_frames)  # fmt: skip
    model_cfg = replace(model_cfg, standardize=mode)
    model = build_va_model(model_cfg, prov["inputs"], inputs)
    if mode != "none":
        model.set_feature_stats(*feature_stats(model, train, covariance=mode == "whiten"))
    config = {"model": model_cfg.record(), "contrastive": asdict(cfg.contrastive),
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
        config=config, provenance=prov, label=f"pretrain {pipeline}",
    )  # fmt: skip


def clip_va_metrics(clips: list[ClipData], pred: list[np.ndarray]) -> dict[str, float]:
    """Flat regression metrics over all frames of `clips` (the validation score)."""
    true = np.concatenate([c.va for c in clips])
    ids = np.concatenate([np.full(len(c), i) for i, c in enumerate(clips)])
    return metrics.va_report(true, np.concatenate(pred), ids)


def finetune_va(
    inputs: Path,
    init_dir: Path,
    cfg: FinetuneStageConfig,
    seed: int,
    ckpt_dir: Path,
    live_dir: Path | None,
    params: dict[str, Any],
) -> FitResult:
    """Stage 2: CCC + MSE fine-tuning from the stage-1 checkpoint; selects on val mean CCC."""
    seed_everything(seed)  # heads the stage-1 checkpoint does not hold start seeded
    model, ckpt = load_va_model(init_dir)
    with open_inputs(inputs, model.cfg.pipeline) as reader:
        check_same_inputs(ckpt, reader)
        train, val = split_clips(reader, "train"), split_clips(reader, "val")
    ft, window = cfg.objective, cfg.window
    model.trainable_parameters(STAGE2_PARTS + (("projector",) if ft.train_projector else ()))

    def step(m, b):
        out = m(b["x"], b["valid"])
        return va_regression_loss(out["va"], b["va"], b["valid"], ft.w_mse, ft.w_ccc)

    def evaluate(m, loader, acc):
        return clip_va_metrics(val, frame_values(val, window_outputs(m, loader, acc)))

    loop = LoopConfig.of(cfg, monitor="val/ccc_mean", mode="max", seed=seed)
    prov = {**ckpt["provenance"], "stage": "finetune", "init": str(init_dir), "params": params}
    config = {**ckpt["config"], "finetune": asdict(ft), "window": asdict(window)}
    return fit(
        model, train_loader(train, window, seed), eval_loader(val, window), step, evaluate,
        loop, live_dir, ckpt_dir, config=config, provenance=prov,
        label=f"finetune {model.cfg.pipeline}",
    )  # fmt: skip
