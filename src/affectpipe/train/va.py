"""Valence/arousal training specifics: data, the two stages, and inference for evaluation.

Inputs are a feature-store file: CLIP frame features (`cached`) or the block cache of hidden
states entering the first LoRA block (`lora`, `probe`; see `block_cache`). Both carry per-frame
`frame`, `valence`, `arousal` and per-clip `split`, `actor`.

Stage 1 (`pretrain_va`) trains the contrastive space (LoRA, temporal transformer, projector,
temporal head) with `ContrastivePretrainer`; stage 2 (`finetune_va`) starts from its checkpoint
and trains the regression path on `w_mse * MSE + w_ccc * (1 - CCC)`, selecting the epoch on the
validation mean CCC. The test split is read only by `predict_va`, after all choices are made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm

from affectpipe import metrics
from affectpipe.features.store import FeatureReader, open_features
from affectpipe.losses import va_regression_loss
from affectpipe.models.contrastive import ContrastiveConfig, ContrastivePretrainer
from affectpipe.models.va import PIPELINES, VAModel, VAModelConfig, resolve_standardize
from affectpipe.problems import InputProblem
from affectpipe.seeding import seed_everything
from affectpipe.train.checkpoint import load_checkpoint
from affectpipe.train.loop import FitResult, LoopConfig, fit
from affectpipe.train.windows import (
    ClipData,
    WindowConfig,
    WindowDataset,
    all_starts,
    overlap_average,
    sliding_items,
)

BLOCK_CONTENT = "clip_hidden_before_block"
STAGE1_PARTS = ("lora", "temporal", "projector", "temporal_head")


@dataclass
class FinetuneConfig:
    """Stage-2 loss weights and what trains besides the regression head."""

    w_mse: float = 1.0
    w_ccc: float = 1.0
    train_projector: bool = False  # False keeps the stage-1 contrastive space as it is


# --- data --------------------------------------------------------------------------------------


def open_inputs(path: Path, pipeline: str) -> FeatureReader:
    """Open the feature file `pipeline` trains on, refusing the other kind of file."""
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline '{pipeline}'; valid: {list(PIPELINES)}")
    reader = open_features(path, {"backbone": "clip"})
    is_blocks = reader.attrs.get("content") == BLOCK_CONTENT
    if is_blocks != (pipeline != "cached"):
        reader.close()
        want = "the block cache" if pipeline != "cached" else "CLIP frame features"
        raise InputProblem(path, f"pipeline '{pipeline}' trains on {want}, not this file")
    return reader


def load_clips(reader: FeatureReader, splits: tuple[str, ...]) -> list[ClipData]:
    """All clips of the given splits, in clip-id order (hidden states kept as float16)."""
    clips = []
    for cid in reader.clip_ids:
        lab = reader.labels(cid)
        missing = [k for k in ("frame", "valence", "arousal", "split") if k not in lab]
        if missing:
            raise InputProblem(reader.path, f"clip {cid} lacks label(s) {missing}")
        if lab["split"] not in splits:
            continue
        x = reader[cid]
        if reader.attrs.get("content") == BLOCK_CONTENT:
            x = x.astype(np.float16)  # halves memory; the model computes in float32
        va = np.stack([lab["valence"], lab["arousal"]], 1).astype(np.float32)
        frames = np.asarray(lab["frame"], dtype=np.int64)
        clips.append(ClipData(cid, x, va, frames, lab["split"], str(lab.get("actor", ""))))
    return clips


def train_loader(clips: list[ClipData], w: WindowConfig, seed: int) -> DataLoader:
    """Random windows: every start position, shuffled; `windows_per_epoch` of them per epoch."""
    ds = WindowDataset(clips, all_starts(clips, w.length), w.length)
    gen = torch.Generator().manual_seed(seed)
    n = w.windows_per_epoch or len(ds)
    sampler = RandomSampler(ds, replacement=n > len(ds), num_samples=n, generator=gen)
    return DataLoader(ds, batch_size=w.batch_size, sampler=sampler)


def eval_loader(clips: list[ClipData], w: WindowConfig) -> DataLoader:
    """Sliding windows over whole clips, in order."""
    ds = WindowDataset(clips, sliding_items(clips, w.length, w.eval_stride), w.length)
    return DataLoader(ds, batch_size=w.batch_size, shuffle=False)


def _split_clips(reader: FeatureReader, split: str) -> list[ClipData]:
    clips = load_clips(reader, (split,))
    if not clips:
        raise InputProblem(reader.path, f"no clip in split '{split}'")
    return clips


# --- model -------------------------------------------------------------------------------------


def build_model(cfg: VAModelConfig, provenance: dict[str, Any]) -> VAModel:
    """The VA model; lora/probe load the CLIP backbone named in `provenance` and check its hash."""
    if cfg.pipeline == "cached":
        return VAModel(cfg)
    from affectpipe.features.backbones import load_backbone

    backbone = load_backbone("clip", provenance["spec"])
    if backbone.config_hash != provenance["config_hash"]:
        raise ValueError(
            f"backbone '{provenance['spec']}' has config hash {backbone.config_hash[:12]}, "
            f"but the inputs were made with {provenance['config_hash'][:12]}"
        )
    return VAModel(cfg, backbone.model)


def input_provenance(reader: FeatureReader) -> dict[str, Any]:
    """Where the inputs came from: travels into every checkpoint."""
    keys = ("backbone", "spec", "config_hash", "content", "block", "dim", "source_settings")
    return {k: reader.attrs[k] for k in keys if k in reader.attrs}


def _check_same_inputs(ckpt: dict[str, Any], reader: FeatureReader) -> None:
    made, now = ckpt["provenance"].get("inputs", {}), input_provenance(reader)
    keys = set(made) | set(now)
    if not ("source_settings" in made and "source_settings" in now):
        keys.discard("source_settings")  # older checkpoints and caches do not record it
    diff = sorted(k for k in keys if made.get(k) != now.get(k))
    if diff:
        raise InputProblem(
            reader.path, f"inputs differ from those the checkpoint was trained on in {diff}"
        )


@torch.no_grad()
def feature_stats(
    model: VAModel, clips: list[ClipData], covariance: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and variance (D,) or covariance (D, D) over every frame of `clips` of the
    features the heads read (`encode`), accumulated in float64 one clip at a time. Taken
    before training: LoRA starts as the identity, so lora and probe share them."""
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
    if cfg.pipeline != "cached" and cfg.pool == "tokens":
        return int(attrs["tokens"]) * cfg.in_dim
    return cfg.in_dim


# --- stage 1 -----------------------------------------------------------------------------------


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
    model_params: dict[str, Any],
    contrastive: ContrastiveConfig,
    window: WindowConfig,
    loop: LoopConfig,
    ckpt_dir: Path,
    live_dir: Path | None,
    params: dict[str, Any],
) -> FitResult:
    """Stage 1: contrastive pretraining; the best epoch by validation loss is checkpointed."""
    seed_everything(loop.seed)  # torch's start-up seed is random: seed before the weights exist
    with open_inputs(inputs, pipeline) as reader:
        prov = {"inputs": input_provenance(reader), "params": params, "stage": "pretrain"}
        cfg = VAModelConfig(pipeline=pipeline, in_dim=int(reader.attrs["dim"]), **model_params)
        train, val = _split_clips(reader, "train"), _split_clips(reader, "val")
        n_frames = sum(len(c) for c in train)
        mode = resolve_standardize(cfg.standardize, frame_dim(cfg, reader.attrs), n_frames)
    cfg = VAModelConfig(**{**asdict(cfg), "standardize": mode})
    model = build_model(cfg, prov["inputs"])
    if mode != "none":
        model.set_feature_stats(*feature_stats(model, train, covariance=mode == "whiten"))
    model.trainable_parameters(STAGE1_PARTS)
    wrapper = ContrastivePretrainer(model, contrastive)
    loop = LoopConfig(**{**asdict(loop), "monitor": "val/loss", "mode": "min"})
    return fit(
        wrapper, train_loader(train, window, loop.seed), eval_loader(val, window),
        lambda m, b: m(b), _loss_eval, loop, live_dir, ckpt_dir,
        config={"model": asdict(cfg), "contrastive": asdict(contrastive), "window": asdict(window)},
        provenance=prov, label=f"pretrain {pipeline}",
    )  # fmt: skip


# --- stage 2 -----------------------------------------------------------------------------------


def load_va_model(ckpt_dir: Path) -> tuple[VAModel, dict[str, Any]]:
    """Rebuild a VA model from a pretrain or finetune checkpoint folder."""
    ckpt = load_checkpoint(ckpt_dir)
    model = build_model(VAModelConfig(**ckpt["config"]["model"]), ckpt["provenance"]["inputs"])
    model.load_checkpoint_state(ckpt["state_dict"])
    return model, ckpt


def window_outputs(model, loader, acc=None) -> dict[str, np.ndarray]:
    """Run `model` over evaluation windows; gather `va`, `z`, `g`, clip and start of each."""
    device = acc.device if acc is not None else next(model.parameters()).device
    parts: dict[str, list[np.ndarray]] = {"va": [], "z": [], "g": [], "clip": [], "start": []}
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(batch["x"], batch["valid"])
        rows = {"va": out["va"], "z": out["z"], "g": out["g"]}
        rows |= {"clip": batch["clip"], "start": batch["start"]}
        if acc is not None:  # drops the samples padded onto the last batch of each process
            rows = acc.gather_for_metrics(rows)
        for k, v in rows.items():
            parts[k].append(v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def _frame_predictions(clips: list[ClipData], w: dict[str, np.ndarray]) -> list[np.ndarray]:
    return overlap_average([len(c) for c in clips], w["clip"], w["start"], w["va"])


def va_metrics(clips: list[ClipData], pred: list[np.ndarray]) -> dict[str, float]:
    """Flat regression metrics over all frames of `clips`."""
    true = np.concatenate([c.va for c in clips])
    ids = np.concatenate([np.full(len(c), i) for i, c in enumerate(clips)])
    return metrics.va_report(true, np.concatenate(pred), ids)


def finetune_va(
    inputs: Path,
    init_dir: Path,
    ft: FinetuneConfig,
    window: WindowConfig,
    loop: LoopConfig,
    ckpt_dir: Path,
    live_dir: Path | None,
    params: dict[str, Any],
) -> FitResult:
    """Stage 2: CCC + MSE fine-tuning from the stage-1 checkpoint; selects on val mean CCC."""
    seed_everything(loop.seed)  # heads the stage-1 checkpoint does not hold start seeded
    model, ckpt = load_va_model(init_dir)
    with open_inputs(inputs, model.cfg.pipeline) as reader:
        _check_same_inputs(ckpt, reader)
        train, val = _split_clips(reader, "train"), _split_clips(reader, "val")
    parts = ("lora", "temporal", "temporal_head", "regressor")
    model.trainable_parameters(parts + (("projector",) if ft.train_projector else ()))

    def step(m, b):
        out = m(b["x"], b["valid"])
        return va_regression_loss(out["va"], b["va"], b["valid"], ft.w_mse, ft.w_ccc)

    def evaluate(m, loader, acc):
        return va_metrics(val, _frame_predictions(val, window_outputs(m, loader, acc)))

    loop = LoopConfig(**{**asdict(loop), "monitor": "val/ccc_mean", "mode": "max"})
    prov = {**ckpt["provenance"], "stage": "finetune", "init": str(init_dir), "params": params}
    config = {**ckpt["config"], "finetune": asdict(ft), "window": asdict(window)}
    return fit(
        model, train_loader(train, window, loop.seed), eval_loader(val, window), step, evaluate,
        loop, live_dir, ckpt_dir, config=config, provenance=prov,
        label=f"finetune {model.cfg.pipeline}",
    )  # fmt: skip


# --- inference for the evaluate stage ----------------------------------------------------------


@torch.no_grad()
def _run(ckpt_dir: Path, inputs: Path, split: str, batch_size: int | None):
    model, ckpt = load_va_model(ckpt_dir)
    model.eval()
    window = WindowConfig(**ckpt["config"]["window"])
    if batch_size:
        window = WindowConfig(**{**asdict(window), "batch_size": batch_size})
    with open_inputs(inputs, model.cfg.pipeline) as reader:
        _check_same_inputs(ckpt, reader)
        clips = _split_clips(reader, split)
    return clips, window_outputs(model, eval_loader(clips, window))


def predict_va(
    ckpt_dir: Path, inputs: Path, split: str = "test", batch_size: int | None = None
) -> pd.DataFrame:
    """One row per frame of `split`: clip, frame, valence/arousal true and predicted.

    Predictions of overlapping windows are averaged per frame.
    """
    clips, w = _run(Path(ckpt_dir), Path(inputs), split, batch_size)
    pred = _frame_predictions(clips, w)
    return pd.DataFrame(
        {
            "clip": np.concatenate([[c.clip_id] * len(c) for c in clips]),
            "frame": np.concatenate([c.frames for c in clips]),
            "valence_true": np.concatenate([c.va[:, 0] for c in clips]),
            "arousal_true": np.concatenate([c.va[:, 1] for c in clips]),
            "valence_pred": np.concatenate([p[:, 0] for p in pred]),
            "arousal_pred": np.concatenate([p[:, 1] for p in pred]),
        }
    )


def embed_va(
    ckpt_dir: Path, inputs: Path, split: str = "test", batch_size: int | None = None
) -> dict[str, Any]:
    """Embeddings for plots: `frames` (clip, frame, valence, arousal) with `z` (N, E) frame
    embeddings averaged over windows, and `clips` (clip, valence, arousal means) with `g`
    (C, E) clip embeddings averaged over each clip's windows."""
    clips, w = _run(Path(ckpt_dir), Path(inputs), split, batch_size)
    z = np.concatenate(overlap_average([len(c) for c in clips], w["clip"], w["start"], w["z"]))
    g = np.stack([w["g"][w["clip"] == i].mean(0) for i in range(len(clips))])
    frames = pd.DataFrame(
        {
            "clip": np.concatenate([[c.clip_id] * len(c) for c in clips]),
            "frame": np.concatenate([c.frames for c in clips]),
            "valence": np.concatenate([c.va[:, 0] for c in clips]),
            "arousal": np.concatenate([c.va[:, 1] for c in clips]),
        }
    )
    clip_df = pd.DataFrame(
        {
            "clip": [c.clip_id for c in clips],
            "valence": [float(c.va[:, 0].mean()) for c in clips],
            "arousal": [float(c.va[:, 1].mean()) for c in clips],
        }
    )
    return {"frames": frames, "z": z, "clips": clip_df, "g": g}
