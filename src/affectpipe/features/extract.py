"""The `extract` stage's stores: one backbone's pooled embeddings of one processed dataset.

What is embedded (the plan, `sources`), how (the pooling, `embed`) and with what provenance is
decided here; the batched, sharded run and the merge into the final file are `shards`'. The
openSMILE feature sets (`egemaps`, `compare`) are audio backbones too, computed by `smile`.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch
from pydantic import PositiveInt
from tqdm import tqdm

from affectpipe.compute import ComputeConfig
from affectpipe.config import params_section
from affectpipe.features import embed as E
from affectpipe.features import smile as S
from affectpipe.features.backbones import Backbone, load_backbone
from affectpipe.features.shards import (
    Rows,
    clean_leftovers,
    env_rank,
    plan_batches,
    run_sharded,
    shard_device,
)
from affectpipe.features.sources import Plan, afewva_frames_plan, av_plan, source_settings
from affectpipe.features.store import FeatureWriter, check_room
from affectpipe.problems import NOT_APPLICABLE, ProblemLog

# Which backbone runs on which dataset; the pairs the `extract` stage knows.
PAIRS: dict[str, tuple[str, ...]] = {
    "clip": ("afewva", "ravdess", "cremad"),
    "videomae": ("ravdess", "cremad"),
    "wav2vec2": ("ravdess", "cremad"),
    "egemaps": ("ravdess", "cremad"),  # openSMILE functionals (`smile`)
    "compare": ("ravdess", "cremad"),
}
_UNIT = {"clip": "frame", "videomae": "video", "wav2vec2": "audio"}


@params_section
class ExtractConfig:
    """`extract.clip`, `extract.videomae` and `extract.wav2vec2` in params.yaml."""

    spec: str  # "tiny", a Hugging Face id, or a local folder in HF format
    batch_size: PositiveInt  # items (frames, clips, utterances) per forward pass
    dtype: Literal["auto", "float32", "bfloat16", "float16"]  # auto: bf16; fp16 without bf16


def config_class(kind: str) -> type[ExtractConfig] | type[S.SmileConfig]:
    """The class of the params section `extract.<kind>`."""
    check_backbone(kind)
    if kind in S.CONFIGS:
        return S.CONFIGS[kind]
    return ExtractConfig


def hidden_states(backbone: Backbone) -> int | None:
    """Pooled vectors per item of a layered store: wav2vec2 keeps every hidden state (L + 1),
    so the layer is chosen in training; None for one vector per item."""
    if backbone.kind != "wav2vec2":
        return None
    return int(backbone.model.config.num_hidden_layers) + 1


def check_backbone(kind: str) -> None:
    if kind not in PAIRS:
        raise ValueError(f"unknown backbone '{kind}'; valid: {sorted(PAIRS)}")


def check_pair(kind: str, dataset: str) -> None:
    check_backbone(kind)
    if dataset not in PAIRS[kind]:
        raise ValueError(f"backbone '{kind}' does not run on '{dataset}'; valid: {PAIRS[kind]}")


def min_audio_samples(model: torch.nn.Module) -> int:
    """Shortest input that yields one wav2vec2 frame (the conv stack's receptive field)."""
    size = 1
    for kernel, stride in zip(
        reversed(model.config.conv_kernel), reversed(model.config.conv_stride), strict=True
    ):
        size = (size - 1) * stride + kernel
    return size


def build_plan(kind: str, dataset: str, folder: Path, backbone: Backbone, log: ProblemLog) -> Plan:
    check_pair(kind, dataset)
    if dataset == "afewva":
        return afewva_frames_plan(folder, log)
    min_samples = min_audio_samples(backbone.model) if kind == "wav2vec2" else 1
    return av_plan(folder, dataset, _UNIT[kind], log, min_samples=min_samples)


def _batches_for(kind: str, plan: Plan, cfg: ExtractConfig, backbone: Backbone) -> list[list[int]]:
    audio = kind == "wav2vec2"
    same = audio and backbone.model.config.feat_extract_norm != "layer"
    return plan_batches(plan, cfg.batch_size, by_length=audio, same_length=same)


def embedding_rows(backbone: Backbone, cfg: ExtractConfig) -> Rows:
    """One pooled embedding per item (`embed.POOLING`), in the configured precision; a layered
    store's (L + 1, D) flattened to one row (the `layers` attribute reshapes it)."""
    dtype = E.compute_dtype(cfg.dtype, backbone.device)
    width = backbone.dim * (hidden_states(backbone) or 1)
    return Rows(lambda x: E.embed(backbone.kind, backbone.model, x).flatten(1), width, dtype)


def versions() -> dict[str, str]:
    import transformers

    return {
        "torch": torch.__version__.split("+")[0],
        "transformers": transformers.__version__,
        **store_versions(),
    }


def store_versions() -> dict[str, str]:
    return {"h5py": h5py.__version__, "numpy": np.__version__}


def provenance(
    backbone: Backbone, cfg: ExtractConfig, dataset: str, settings: str = "{}"
) -> dict[str, Any]:
    """File attributes: what a reader must match for the cache to be trusted."""
    kind, config = backbone.kind, backbone.model.config
    prep: dict[str, Any] = {"processor": backbone.processor.to_dict()}
    if backbone.pixels is not None:
        prep["pixels"] = backbone.pixels.describe()
    if kind == "videomae":
        prep["num_frames"], prep["frame_sampling"] = int(config.num_frames), "linspace-round"
    if kind == "wav2vec2":
        prep["hidden_states"], prep["mask_passed"] = "all", config.feat_extract_norm == "layer"
    dtype = E.compute_dtype(cfg.dtype, backbone.device)
    layers = hidden_states(backbone)
    return {
        **({"layers": layers} if layers is not None else {}),  # rows are (layers * dim)
        "backbone": kind,
        "spec": backbone.spec,
        "config_hash": backbone.config_hash,
        "weights_hash": backbone.weights_hash,
        "model_class": type(backbone.model).__name__,
        "pooling": E.POOLING[kind],
        "dim": backbone.dim,
        "dataset": dataset,
        "dtype": str(dtype).removeprefix("torch."),
        "precision": "float32" if dtype == torch.float32 else "autocast, weights stored in dtype",
        "preprocessing": json.dumps(prep, sort_keys=True, default=str),
        "versions": json.dumps(versions(), sort_keys=True),
        "source_settings": settings,  # the dataset's preprocessing (`sources.source_settings`)
    }


def expected_attrs(
    kind: str, cfg: ExtractConfig | S.SmileConfig, dataset: str, processed: Path | None = None
) -> dict[str, Any]:
    """What a store of `kind` on `dataset` made with `cfg` (from the processed folder
    `processed`, when given) records, as far as it shows without loading the backbone. The
    stages that read a store check it (`open_features`), so a stage run by hand, outside DVC,
    refuses features made with other params. The weights' own hash needs the weights: a
    checkpoint records it, and `predict` checks it."""
    smile = not isinstance(cfg, ExtractConfig)
    expect: dict[str, Any] = {
        "backbone": kind,
        "spec": cfg.feature_set if smile else cfg.spec,
        "dataset": dataset,
    }
    if not smile and cfg.dtype != "auto":  # auto: bf16 or fp16, as the extracting device had it
        expect["dtype"] = cfg.dtype
    if processed is not None:
        expect["source_settings"] = source_settings(processed)
    return expect


def report(plan: Plan, log: ProblemLog, kind: str, out: Path) -> dict[str, Any]:
    return {
        "backbone": kind,
        "dataset": plan.dataset,
        "file": str(out),
        "clips": len(plan.clips),
        "items": len(plan.items),
        "skipped": log.to_json(),
        "no_modality": sorted(plan.no_modality),
    }


def not_applicable(plan: Plan, kind: str, log: ProblemLog) -> str | None:
    """Why `plan` holds nothing for `kind` although no input failed: no clip of the dataset has
    the modality (an audio-only or a video-only release). None when that is not the case: an
    empty plan with skipped inputs is an error, not a layout."""
    if plan.items or log.skipped or not plan.no_modality:
        return None
    modality = "audio" if kind in S.CONFIGS or _UNIT.get(kind) == "audio" else "video"
    return (f"no clip of {plan.dataset} has {modality} (all {len(plan.no_modality)} lack it): "
            f"nothing for {kind} to embed")  # fmt: skip


def write_not_applicable(
    out: Path, attrs: dict[str, Any], why: str, plan: Plan, log: ProblemLog, kind: str
) -> tuple[dict[str, Any], float]:
    """An empty, complete store that says why (`NOT_APPLICABLE`), so the stages after it record
    the models that need it as not applicable instead of failing."""
    if env_rank()[0] == 0:
        clean_leftovers(out)
        with FeatureWriter(out, {**attrs, NOT_APPLICABLE: why}):
            pass
    return report(plan, log, kind, out) | {NOT_APPLICABLE: why}, 0.0


def extract_features(
    kind: str,
    dataset: str,
    folder: Path,
    out: Path,
    cfg: ExtractConfig,
    compute: ComputeConfig,
    policy: str = "skip",
) -> tuple[dict[str, Any], float]:
    """Embed a processed dataset folder into `out`; return the stage report and the seconds
    from the first batch to the final file (the model load and the file listing excluded).

    Under torchrun/accelerate (WORLD_SIZE > 1) this process runs its own shard and rank 0
    merges (`shards.run_sharded`).
    """
    check_pair(kind, dataset)
    if not isinstance(cfg, config_class(kind)):
        raise TypeError(f"extract {kind}: needs a {config_class(kind).__name__}")
    if kind in S.CONFIGS:
        return extract_smile(kind, dataset, folder, out, cfg, policy)  # type: ignore[arg-type]
    backbone = load_backbone(kind, cfg.spec, shard_device(compute.device))
    log = ProblemLog(policy)  # type: ignore[arg-type]
    plan = build_plan(kind, dataset, folder, backbone, log)
    attrs = partial(provenance, backbone, cfg, dataset, source_settings(folder))
    if not plan.items:
        if (why := not_applicable(plan, kind, log)) is None:
            raise ValueError(f"{folder}: nothing to embed with {kind} ({len(log.skipped)} skipped)")
        return write_not_applicable(out, attrs(), why, plan, log, kind)
    batches = _batches_for(kind, plan, cfg, backbone)
    rows = embedding_rows(backbone, cfg)
    start = time.perf_counter()
    run_sharded(backbone, plan, batches, rows, out, compute.dataloader_workers, attrs, log)
    seconds = time.perf_counter() - start
    return report(plan, log, kind, out), seconds


def extract_smile(
    kind: str, dataset: str, folder: Path, out: Path, cfg: S.SmileConfig, policy: str = "skip"
) -> tuple[dict[str, Any], float]:
    """`extract_features` for an openSMILE feature set: every clip's functionals, in a pool of
    one process per core, into `out`. Under torchrun/accelerate the main process does it all
    (its pool already uses every core); the others have nothing to do."""
    log = ProblemLog(policy)  # type: ignore[arg-type]
    plan = av_plan(folder, dataset, "audio", log)
    settings = source_settings(folder)
    if not plan.items:
        if (why := not_applicable(plan, kind, log)) is None:
            n = len(log.skipped)
            raise ValueError(f"{folder}: nothing to extract with {kind} ({n} skipped)")
        attrs = S.provenance(kind, cfg, dataset, settings, store_versions())
        return write_not_applicable(out, attrs, why, plan, log, kind)
    if env_rank()[0] != 0:
        return report(plan, log, kind, out), 0.0
    clean_leftovers(out)
    check_room(out, len(plan.clips), S.FEATURE_SETS[kind][cfg.feature_set])
    tasks = -(-len(plan.clips) // cfg.batch_size)
    start = time.perf_counter()
    bar = tqdm(total=len(plan.clips), unit="item", desc=f"{kind} {dataset}", disable=None)
    with bar:
        rows = S.compute_functionals(
            plan, cfg.feature_set, cfg.batch_size, log, S.worker_count(tasks), bar
        )
    if not rows:
        raise ValueError(f"{folder}: no clip gave {kind} features ({len(log.skipped)} skipped)")
    S.write_store(plan, rows, out, S.provenance(kind, cfg, dataset, settings, store_versions()))
    seconds = time.perf_counter() - start
    return report(plan, log, kind, out), seconds
