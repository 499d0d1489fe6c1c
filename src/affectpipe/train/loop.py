"""The one training loop, shared by both VA stages, all VA pipelines and the multimodal models.

    result = fit(model, train_loader, val_loader, step_fn, eval_fn, cfg, live_dir, ckpt_dir,
                 config=..., provenance=...)

- `step_fn(model, batch) -> {"loss": tensor, ...}`: one forward pass; every returned entry is
  averaged over the epoch and logged as `train/<name>`.
- `eval_fn(model, val_loader, accelerator) -> {name: float}`: the validation metrics, computed
  over the whole validation set (use `accelerator.gather_for_metrics`, which drops the samples
  padded onto the last batch when several processes split the data); logged as `val/<name>`.
- Under several processes both receive the model wrapped in DistributedDataParallel: call it
  (the wrapper synchronises gradients), read its attributes through `unwrap(model)`.
- `cfg.monitor` (e.g. `val/ccc_mean`, mode `max`) drives model selection and early stopping;
  the best epoch's checkpoint is written to `ckpt_dir` and its weights are loaded back into
  `model` before `fit` returns.

Built on Hugging Face Accelerate (device placement, mixed precision, gradient accumulation,
multi-process), so the same code runs under `accelerate launch`; only the main process logs and
writes. The model may define `checkpoint_state()` to choose what is saved (default: all).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from affectpipe.config import params_section
from affectpipe.models.checkpoint import save_checkpoint
from affectpipe.seeding import seed_everything

StepFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]
EvalFn = Callable[[nn.Module, DataLoader, Any], dict[str, float]]


@params_section
class OptimConfig:
    """How a stage optimises: the loop's knobs a stage's params section holds."""

    epochs: int
    lr: float
    weight_decay: float
    warmup_frac: float  # fraction of optimiser steps with linear warm-up, then cosine
    grad_clip: float  # max gradient norm; 0 disables clipping
    grad_accum: int  # batches per optimiser step
    mixed_precision: Literal["auto", "no", "bf16", "fp16"]  # auto: bf16 (or fp16) on CUDA
    patience: int  # epochs without improvement before stopping; 0 disables early stopping

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.grad_accum < 1 or not 0 <= self.warmup_frac < 1:
            raise ValueError(
                f"need epochs >= 1, grad_accum >= 1, 0 <= warmup_frac < 1; got {self.epochs}, "
                f"{self.grad_accum}, {self.warmup_frac}"
            )


@params_section
class LoopConfig(OptimConfig):
    """Everything `fit` needs: the optimisation params plus what the stage fixes itself (the
    metric it selects on and the seed)."""

    monitor: str  # e.g. val/loss, val/ccc_mean
    mode: Literal["min", "max"]
    seed: int

    @classmethod
    def of(cls, optim: OptimConfig, monitor: str, mode: str, seed: int) -> LoopConfig:
        """`optim`'s knobs (any section inheriting them) with the stage's selection and seed."""
        knobs = {f.name: getattr(optim, f.name) for f in dataclasses.fields(OptimConfig)}
        return cls(**knobs, monitor=monitor, mode=mode, seed=seed)


@dataclass
class FitResult:
    best_epoch: int
    best_value: float
    best_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def resolve_precision(choice: str) -> str:
    """`auto` -> bf16 on CUDA that supports it, fp16 on older CUDA, none on CPU."""
    if choice != "auto":
        return choice
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """LR multiplier: linear from 1/warmup to 1 over `warmup` steps, then cosine to 0."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _improved(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value > best if mode == "max" else value < best)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    getter = getattr(model, "checkpoint_state", model.state_dict)
    return {k: v.detach().cpu().clone() for k, v in getter().items()}


def _train_epoch(model, loader, step_fn, acc, opt, sched, cfg, params, desc) -> dict[str, float]:
    model.train()
    sums: dict[str, float] = {}
    n = 0
    for batch in tqdm(loader, desc=desc, leave=False, disable=not acc.is_main_process):
        with acc.accumulate(model):
            out = step_fn(model, batch)
            loss = float(out["loss"].detach())
            if not math.isfinite(loss):
                raise ValueError(
                    f"{desc}, batch {n + 1}: the training loss is {loss}; the inputs hold "
                    f"NaN/inf (check the feature store) or the lr diverges"
                )
            acc.backward(out["loss"])
            if acc.sync_gradients and cfg.grad_clip > 0:
                acc.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad()
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        n += 1
    # mean over this process's batches, then over processes
    means = torch.tensor([sums[k] / max(n, 1) for k in sorted(sums)], device=acc.device)
    means = acc.reduce(means, reduction="mean")
    return {f"train/{k}": float(v) for k, v in zip(sorted(sums), means.tolist(), strict=True)}


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    step_fn: StepFn,
    eval_fn: EvalFn,
    cfg: LoopConfig,
    live_dir: Path | None,
    ckpt_dir: Path,
    config: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    label: str = "",
) -> FitResult:
    """Train `model`, keep the best epoch by `cfg.monitor`; see the module docstring."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    seed_everything(cfg.seed)
    acc = Accelerator(
        # without an accelerator, CPU processes join the process group (gloo) only when told
        cpu=not torch.accelerator.is_available(),
        mixed_precision=resolve_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.grad_accum,
        # batch sizes in params are global: processes split each batch, so the process count
        # changes the speed, not the optimisation (docs/scale.md)
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    _check_world(acc.num_processes)
    train_loader, val_loader = acc.prepare(train_loader, val_loader)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    # split batches: the prepared loader has the global batch count, the scheduler steps once
    total = cfg.epochs * math.ceil(len(train_loader) / cfg.grad_accum)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, warmup_cosine(max(1, int(cfg.warmup_frac * total)), total)
    )
    model, opt, sched = acc.prepare(model, opt, sched)
    live = open_live(live_dir) if acc.is_main_process else None

    best: float | None = None
    result = FitResult(best_epoch=-1, best_value=float("nan"), best_metrics={})
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0
    for epoch in range(cfg.epochs):
        desc = f"{label} epoch {epoch + 1}/{cfg.epochs}".lstrip()  # label: what trains
        row = _train_epoch(model, train_loader, step_fn, acc, opt, sched, cfg, params, desc)
        model.eval()
        with torch.no_grad():
            row.update({f"val/{k}": float(v) for k, v in eval_fn(model, val_loader, acc).items()})
        row["lr"] = float(sched.get_last_lr()[0])
        if cfg.monitor not in row:
            raise ValueError(f"monitor '{cfg.monitor}' is not among the metrics {sorted(row)}")
        result.history.append({"epoch": epoch, **row})
        if live is not None:
            for k in sorted(row):
                live.log_metric(k, row[k])
            live.next_step()
        if _improved(row[cfg.monitor], best, cfg.mode):
            best, bad_epochs = row[cfg.monitor], 0
            result.best_epoch, result.best_value, result.best_metrics = epoch, best, dict(row)
            best_state = _state(acc.unwrap_model(model))
            if acc.is_main_process:
                # how it ran: processes and device change per-process statistics and precision
                ran = {"processes": acc.num_processes, "device": acc.device.type,
                       "mixed_precision": str(acc.mixed_precision)}  # fmt: skip
                prov = {**(provenance or {}), "machine": ran}
                save_checkpoint(ckpt_dir, best_state, config or {}, prov, epoch, dict(row))
        else:
            bad_epochs += 1
            if cfg.patience and bad_epochs >= cfg.patience:
                result.stopped_early = True
                break
    if live is not None:
        live.end()
    acc.wait_for_everyone()
    if best_state is None:
        raise ValueError(f"'{cfg.monitor}' was never finite: no checkpoint written")
    _restore(acc.unwrap_model(model), best_state)
    return result


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (itself otherwise), for attributes."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _check_world(processes: int) -> None:
    """Refuse to train alone in a process the launcher started as one of several."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if processes != world:
        raise ValueError(
            f"launched as {world} processes, but Accelerate runs {processes}: every process "
            "would train on all the data (CPU without ACCELERATE_USE_CPU?)"
        )


def _restore(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Inverse of `_state`: through `load_checkpoint_state()` when the model defines it."""
    loader = getattr(model, "load_checkpoint_state", None)
    if loader is not None:
        loader(state)
    else:
        model.load_state_dict(state)


def open_live(live_dir: Path | None):
    """dvclive logger writing under `live_dir` (no dvc.yaml edits, no experiment commits)."""
    if live_dir is None:
        return None
    from dvclive import Live

    return Live(str(live_dir), dvcyaml=False, save_dvc_exp=False)
