"""Batched, sharded computation of per-item rows into an HDF5 feature store.

Every store built from a backbone (pooled embeddings in `extract`, CLIP hidden states in
`block_cache`) runs here. The batch plan is computed once from the clip plan and is the same in
every process; process `rank` of `world` runs batches `rank, rank + world, ...` and appends their
rows to its own part file. The main process then merges the parts into the final file clip by
clip, in clip-id order. A single-process run goes through the same part-and-merge path, and a
batch holds the same items whatever the number of processes, so the final file is byte-identical
for any `world` (at the same intra-op thread count per process: CPU kernels split their sums by
threads).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from affectpipe.features import embed as E
from affectpipe.features.backbones import Backbone, resolve_device
from affectpipe.features.sources import ClipEntry, Plan
from affectpipe.features.store import FeatureWriter, check_room
from affectpipe.problems import RUN_ERRNOS, InputProblem, ProblemLog, note_leftovers

_CHUNK_BYTES = 1 << 20  # part-file chunks within HDF5's default chunk cache, for the merge


@dataclass(frozen=True)
class Rows:
    """What a store holds per item: `of(model inputs)` -> (B, dim) rows, run in `dtype`."""

    of: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    dim: int
    dtype: torch.dtype  # float32, or the autocast dtype the frozen weights are cast to


def env_rank() -> tuple[int, int]:
    """(rank, world) of this process under torchrun/accelerate; (0, 1) when run alone."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def shard_device(name: str) -> torch.device:
    """`compute.device`, one GPU per process under torchrun/accelerate."""
    device = resolve_device(name)
    rank, world = env_rank()
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    return device


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


def plan_batches(
    plan: Plan, batch_size: int, by_length: bool, same_length: bool, within_clips: bool = False
) -> list[list[int]]:
    """Global item indices per batch.

    `by_length` (audio): items sorted by length so padding is small; `same_length` (group-norm
    wav2vec2, whose normalisation sees padding): a batch never mixes lengths; `within_clips`: a
    batch never spans two clips (each clip's items in runs of `batch_size` from its first).
    """
    order = list(range(len(plan.items)))
    if by_length:
        order.sort(key=lambda i: (plan.items[i].length, i))
    batches: list[list[int]] = []
    for i in order:
        first = plan.items[batches[-1][0]] if batches else None
        full = batches and len(batches[-1]) == batch_size
        new_len = same_length and first is not None and first.length != plan.items[i].length
        new_clip = within_clips and first is not None and first.clip_id != plan.items[i].clip_id
        if not batches or full or new_len or new_clip:
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


def remove_leftovers(out: Path, world: int) -> list[Path]:
    """Delete what a killed run with another process count left beside `out` (its part files
    and their temporaries, the temporaries of the store and of its report, `.<stem>.*.tmp`);
    return them, for the log. This run's own part names are left alone: each process
    overwrites its own, and another process may already be writing one."""
    mine = {part_path(out, r, world).name for r in range(world)}
    candidates = [*out.parent.glob(f"{out.name}.part-*"), *out.parent.glob(f".{out.stem}.*.tmp")]
    stale = sorted(p for p in candidates
                   if p.is_file() and p.name.removesuffix(".tmp") not in mine)  # fmt: skip
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def clean_leftovers(out: Path, world: int = 1) -> None:
    """`remove_leftovers`, named on stderr (the main process's job)."""
    note_leftovers(out.parent, remove_leftovers(out, world))


def extract_shard(
    backbone: Backbone,
    plan: Plan,
    batches: list[list[int]],
    part: Path,
    rows: Rows,
    rank: int = 0,
    world: int = 1,
    workers: int | str = 0,
) -> int:
    """Compute the rows of batches `rank::world` into `part` (items, features); return the
    item count. With no `workers`, this process decodes each batch on its intra-op threads."""
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
    E.cast_frozen(backbone.model, rows.dtype)
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
        with (
            h5py.File(tmp, "w") as f,
            torch.inference_mode(),
            E.autocast(backbone.device, rows.dtype),
        ):
            done = _run_batches(loader, backbone, rows, f, bar)
    except BaseException as err:
        tmp.unlink(missing_ok=True)  # an interrupted shard leaves nothing behind
        if isinstance(err, OSError) and err.errno in RUN_ERRNOS:
            raise OSError(err.errno, err.strerror, str(part)) from None
        raise
    finally:
        bar.close()
    os.replace(tmp, part)
    return done


def _run_batches(
    loader: DataLoader, backbone: Backbone, rows: Rows, f: h5py.File, bar: tqdm
) -> int:
    """Append each batch's (item ids, rows) to the open part file `f`."""
    dim = rows.dim
    chunk = max(1, min(256, _CHUNK_BYTES // (4 * dim)))
    ids_ds = f.create_dataset("items", (0,), np.int64, maxshape=(None,), chunks=(4096,))
    feats = f.create_dataset(
        "features", (0, dim), np.float32, maxshape=(None, dim), chunks=(chunk, dim)
    )
    done = 0
    for ids, decoded in loader:
        out = rows.of(E.model_inputs(backbone, decoded)).cpu().numpy()  # (B, dim)
        ids_ds.resize((done + len(ids),))
        feats.resize((done + len(ids), dim))
        ids_ds[done:], feats[done:] = ids, out
        done += len(ids)
        bar.update(len(ids))
    return done


def finite_rows(
    plan: Plan, clip: ClipEntry, feats: np.ndarray, log: ProblemLog
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The clip's rows and labels without the items of any input whose row is not finite
    (a NaN/inf embedding would poison every model trained on the store): each such input is
    reported to `log` (raise or skip); None when no row is left."""
    finite = np.isfinite(feats).all(axis=1)
    if finite.all():
        return feats, clip.labels
    paths = [item.path for item in plan.items[clip.start : clip.stop]]
    bad = sorted({p for p, ok in zip(paths, finite, strict=True) if not ok})
    for path in bad:
        n = sum(1 for p, ok in zip(paths, finite, strict=True) if p == path and not ok)
        log.report(InputProblem(path, f"{n} feature row(s) not finite (NaN/inf); not stored"))
    keep = np.array([p not in bad for p in paths])
    if not keep.any():
        return None
    n = len(paths)
    labels = {k: np.asarray(v)[keep] if np.ndim(v) and len(v) == n else v
              for k, v in clip.labels.items()}  # fmt: skip
    return feats[keep], labels


def merge_parts(
    parts: list[Path], plan: Plan, out: Path, attrs: dict[str, Any], log: ProblemLog
) -> None:
    """Write the final file from part files, clip by clip in id order (one clip in memory);
    rows that are not finite are refused (`finite_rows`)."""
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
                kept = finite_rows(plan, clip, np.asarray(feats), log)
                if kept is not None:
                    writer.add(clip.clip_id, kept[0], **kept[1])
    finally:
        for f in files:
            f.close()


def run_sharded(
    backbone: Backbone,
    plan: Plan,
    batches: list[list[int]],
    rows: Rows,
    out: Path,
    workers: int | str,
    attrs: Callable[[], dict[str, Any]],
    log: ProblemLog,
) -> None:
    """Compute `rows` for `batches` of `plan` into `out`, with file attributes `attrs()`; an
    input whose rows are not finite is reported to `log` (`finite_rows`).

    Under torchrun/accelerate (WORLD_SIZE > 1) each process runs its own shard and waits at a
    barrier; rank 0 then merges the parts. A single process runs the one shard and merges it.
    The disk must hold the parts and the final file at once (`check_room`).
    """
    rank, world = env_rank()
    part = part_path(out, rank, world)
    if rank == 0:
        clean_leftovers(out, world)
    check_room(out, len(plan.items), rows.dim, copies=2)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        extract_shard(backbone, plan, batches, part, rows, rank, world, workers)
        dist.barrier()
    else:
        extract_shard(backbone, plan, batches, part, rows, 0, 1, workers)
    if rank == 0:
        parts = [part_path(out, r, world) for r in range(world)]
        try:
            merge_parts(parts, plan, out, attrs(), log)
        finally:  # a failed merge (a strict refusal, a full disk) leaves no parts either
            for p in parts:
                p.unlink(missing_ok=True)
