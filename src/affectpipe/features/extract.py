"""Batched, sharded extraction of backbone embeddings into the HDF5 feature store.

The batch plan is computed once from the clip plan and is the same in every process; process
`rank` of `world` runs batches `rank, rank + world, ...` and appends their rows to its own part
file. The main process then merges the parts into the final file clip by clip, in clip-id order.
A single-process run goes through the same part-and-merge path, and a batch holds the same
items whatever the number of processes, so the final file is byte-identical for any `world`
(at the same intra-op thread count per process: CPU kernels split their sums by threads).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from affectpipe.compute import ComputeConfig
from affectpipe.features import embed as E
from affectpipe.features.backbones import Backbone, load_backbone, resolve_device
from affectpipe.features.sources import Plan, afewva_frames_plan, av_plan, source_settings
from affectpipe.features.store import FeatureWriter
from affectpipe.problems import ProblemLog

# Which backbone runs on which dataset; the pairs the `extract` stage knows.
PAIRS: dict[str, tuple[str, ...]] = {
    "clip": ("afewva", "ravdess", "cremad"),
    "videomae": ("ravdess", "cremad"),
    "wav2vec2": ("ravdess", "cremad"),
}
_UNIT = {"clip": "frame", "videomae": "video", "wav2vec2": "audio"}


@dataclass
class ExtractConfig:
    """`extract.<backbone>` in params.yaml."""

    spec: str = "tiny"  # "tiny", a Hugging Face id, or a local folder in HF format
    batch_size: int = 32  # items (frames, clips, utterances) per forward pass
    dtype: str = "auto"  # auto (bf16; fp16 on GPUs without bf16) | float32 | bfloat16 | float16
    layer: int = -1  # wav2vec2 only: index into hidden_states (0 = before the first block)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"extract: batch_size must be >= 1, got {self.batch_size}")


def resolve_workers(workers: int | str, device: torch.device) -> int:
    """`auto` -> 0 on a CPU, up to 4 (one core left for the main process) beside a GPU.

    On a CPU the forward pass runs on every core; a worker process decoding at the same time
    preempts one of the model's threads, and the others wait for it at the next parallel
    region. Measured on 2 cores (`bench/extract.py`): decoding in the model's process, on all
    cores between batches, beats one overlapped worker.
    """
    if workers == "auto":
        return 0 if device.type == "cpu" else min(4, max(1, len(os.sched_getaffinity(0)) - 1))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"compute.dataloader_workers must be 'auto' or >= 0, got {workers!r}")
    return workers


def check_pair(kind: str, dataset: str) -> None:
    if kind not in PAIRS:
        raise ValueError(f"unknown backbone '{kind}'; valid: {sorted(PAIRS)}")
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


def plan_batches(
    plan: Plan, batch_size: int, by_length: bool, same_length: bool
) -> list[list[int]]:
    """Global item indices per batch.

    `by_length` (audio): items sorted by length so padding is small; `same_length` (group-norm
    wav2vec2, whose normalisation sees padding): a batch never mixes lengths.
    """
    order = list(range(len(plan.items)))
    if by_length:
        order.sort(key=lambda i: (plan.items[i].length, i))
    batches: list[list[int]] = []
    for i in order:
        full = batches and len(batches[-1]) == batch_size
        new_len = (
            same_length and batches and plan.items[batches[-1][0]].length != plan.items[i].length
        )
        if not batches or full or new_len:
            batches.append([])
        batches[-1].append(i)
    return batches


class _Batches(Dataset):
    """Decoded batches, read in DataLoader workers while the model runs (`embed.decode`)."""

    def __init__(
        self,
        kind: str,
        processor: Any,
        plan: Plan,
        batches: list[list[int]],
        num_frames: int,
        threads: int = 1,
    ) -> None:
        self.kind, self.processor, self.plan = kind, processor, plan
        self.batches, self.num_frames, self.threads = batches, num_frames, threads

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[list[int], dict]:
        ids = self.batches[i]
        items = [self.plan.items[j] for j in ids]
        return ids, E.decode(self.kind, self.processor, items, self.num_frames, self.threads)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # a decoding worker needs one thread; the model has the rest


def _cpu_worker_init(worker: int) -> None:
    """Beside a model on the CPU, a decoding worker also runs at a lower priority.

    The model's threads use every core, and a worker that preempts one of them stalls the
    others at the next parallel region.
    """
    _worker_init(worker)
    os.nice(10)


def part_path(out: Path, rank: int, world: int) -> Path:
    return out.with_name(f"{out.name}.part-{rank}-of-{world}")


def extract_shard(
    backbone: Backbone,
    plan: Plan,
    batches: list[list[int]],
    part: Path,
    cfg: ExtractConfig,
    rank: int = 0,
    world: int = 1,
    workers: int | str = 0,
) -> int:
    """Embed batches `rank::world` into `part` (items, features); return the item count.

    With no `workers`, this process decodes each batch on its intra-op threads.
    """
    mine = batches[rank::world]
    num_frames = int(getattr(backbone.model.config, "num_frames", 16))
    workers = resolve_workers(workers, backbone.device)
    threads = 1 if workers else torch.get_num_threads()
    data = _Batches(backbone.kind, backbone.processor, plan, mine, num_frames, threads)
    loader = DataLoader(
        data,
        batch_size=None,
        num_workers=workers,
        worker_init_fn=_cpu_worker_init if backbone.device.type == "cpu" else _worker_init,
        prefetch_factor=4 if workers else None,
        pin_memory=backbone.device.type == "cuda",
    )
    device = backbone.device
    dtype = E.compute_dtype(cfg.dtype, device)
    E.cast_frozen(backbone.model, dtype)
    tmp = part.with_name(part.name + ".tmp")
    bar = tqdm(
        total=sum(map(len, mine)),
        unit="item",
        desc=f"{backbone.kind} {plan.dataset}",
        position=rank,
        disable=None,
        dynamic_ncols=True,
    )
    try:
        with h5py.File(tmp, "w") as f, torch.inference_mode(), E.autocast(device, dtype):
            done = _run_batches(loader, backbone, cfg.layer, f, bar)
    except BaseException:
        tmp.unlink(missing_ok=True)  # an interrupted shard leaves nothing behind
        raise
    finally:
        bar.close()
    os.replace(tmp, part)
    return done


def _run_batches(
    loader: DataLoader, backbone: Backbone, layer: int, f: h5py.File, bar: tqdm
) -> int:
    """Append each batch's (item ids, embeddings) to the open part file `f`."""
    dim = backbone.dim
    ids_ds = f.create_dataset("items", (0,), np.int64, maxshape=(None,), chunks=(4096,))
    feats = f.create_dataset(
        "features", (0, dim), np.float32, maxshape=(None, dim), chunks=(256, dim)
    )
    done = 0
    for ids, decoded in loader:
        inputs = E.model_inputs(backbone, decoded)
        out = E.embed(backbone.kind, backbone.model, inputs, layer).cpu().numpy()  # (B, dim)
        ids_ds.resize((done + len(ids),))
        feats.resize((done + len(ids), dim))
        ids_ds[done:], feats[done:] = ids, out
        done += len(ids)
        bar.update(len(ids))
    return done


def merge_parts(parts: list[Path], plan: Plan, out: Path, attrs: dict[str, Any]) -> None:
    """Write the final file from part files, clip by clip in id order (one clip in memory)."""
    where = np.full((len(plan.items), 2), -1, np.int64)  # item -> (part, row)
    files = [h5py.File(p, "r") for p in parts]
    try:
        for k, f in enumerate(files):
            items = f["items"][...]
            where[items, 0], where[items, 1] = k, np.arange(len(items))
        missing = np.flatnonzero(where[:, 0] < 0)
        assert not len(missing), f"merge: {len(missing)} item(s) in no part, e.g. {missing[:5]}"
        with FeatureWriter(out, attrs) as writer:
            for clip in tqdm(plan.clips, desc="merge", unit="clip", disable=None):
                rows = where[clip.start : clip.stop]  # (n, 2)
                feats = (
                    np.stack([files[k]["features"][r] for k, r in rows])
                    if len(rows) > 1
                    else files[rows[0, 0]]["features"][rows[0, 1] : rows[0, 1] + 1]
                )
                writer.add(clip.clip_id, feats, **clip.labels)
    finally:
        for f in files:
            f.close()


def versions() -> dict[str, str]:
    import transformers

    return {
        "torch": torch.__version__.split("+")[0],
        "transformers": transformers.__version__,
        "h5py": h5py.__version__,
        "numpy": np.__version__,
    }


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
        prep["layer"], prep["mask_passed"] = cfg.layer, config.feat_extract_norm == "layer"
    dtype = E.compute_dtype(cfg.dtype, backbone.device)
    return {
        "backbone": kind,
        "spec": backbone.spec,
        "config_hash": backbone.config_hash,
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


def feature_path(out_dir: Path, kind: str, dataset: str) -> Path:
    return out_dir / f"{kind}_{dataset}.h5"


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


def _env_rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _spawned_shard(
    rank: int,
    kind: str,
    dataset: str,
    folder: Path,
    out: Path,
    cfg: ExtractConfig,
    compute: ComputeConfig,
    world: int,
) -> None:
    """Entry point of one spawned process (picklable arguments only)."""
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    device = resolve_device(compute.device)
    if device.type == "cuda" and torch.cuda.device_count() > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    backbone = load_backbone(kind, cfg.spec, device)
    plan = build_plan(kind, dataset, folder, backbone, ProblemLog("skip"))
    batches = _batches_for(kind, plan, cfg, backbone)
    extract_shard(
        backbone,
        plan,
        batches,
        part_path(out, rank, world),
        cfg,
        rank,
        world,
        compute.dataloader_workers,
    )


def _batches_for(kind: str, plan: Plan, cfg: ExtractConfig, backbone: Backbone) -> list[list[int]]:
    audio = kind == "wav2vec2"
    same = audio and backbone.model.config.feat_extract_norm != "layer"
    return plan_batches(plan, cfg.batch_size, by_length=audio, same_length=same)


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
    merges; otherwise `compute.processes` shards are spawned here and merged.
    """
    check_pair(kind, dataset)
    rank, world = _env_rank()
    device = resolve_device(compute.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    backbone = load_backbone(kind, cfg.spec, device)
    log = ProblemLog(policy)  # type: ignore[arg-type]
    plan = build_plan(kind, dataset, folder, backbone, log)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not plan.items:
        raise ValueError(f"{folder}: nothing to embed with {kind} ({len(log.skipped)} skipped)")
    batches = _batches_for(kind, plan, cfg, backbone)
    start = time.perf_counter()
    if world > 1:
        _distributed(backbone, plan, batches, out, cfg, compute, rank, world)
    elif compute.processes > 1:
        world = compute.processes
        args = (kind, dataset, folder, out, cfg, compute, world)
        torch.multiprocessing.spawn(_spawned_shard, args=args, nprocs=world, join=True)
    else:
        extract_shard(
            backbone, plan, batches, part_path(out, 0, 1), cfg, 0, 1, compute.dataloader_workers
        )
    parts = [part_path(out, r, world) for r in range(world)]
    if rank == 0:
        attrs = provenance(backbone, cfg, dataset, source_settings(folder))
        merge_parts(parts, plan, out, attrs)
        for p in parts:
            p.unlink()
    seconds = time.perf_counter() - start
    return report(plan, log, kind, out), seconds


def _distributed(
    backbone: Backbone,
    plan: Plan,
    batches: list[list[int]],
    out: Path,
    cfg: ExtractConfig,
    compute: ComputeConfig,
    rank: int,
    world: int,
) -> None:
    """One shard per torchrun/accelerate process; a barrier before rank 0 merges."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    extract_shard(
        backbone,
        plan,
        batches,
        part_path(out, rank, world),
        cfg,
        rank,
        world,
        compute.dataloader_workers,
    )
    dist.barrier()
