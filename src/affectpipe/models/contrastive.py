"""Stage-1 contrastive pretraining around a `VAModel`, in the manner of MoCo (He et al. 2020).

Keys come from a momentum (EMA) copy of the whole trainable query path (LoRA block or temporal
transformer, standardisation, projector) applied to the same cached frozen input, so queued keys
of different steps come from one slowly moving encoder. A FIFO memory queue of past keys (with
their VA labels and clip ids) supplies negatives beyond the batch. Queue and pointer are
buffers, so they move with the module between devices; checkpoints hold the VA model alone.
Under several processes, keys are gathered from all of them before enqueueing, as MoCo does, so
every process holds the same queue.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from affectpipe.config import params_section
from affectpipe.losses import global_local_infonce, local_local_infonce, smoothness
from affectpipe.models.va import VAModel


@params_section
class ContrastiveConfig:
    """Loss weights and the MoCo machinery of stage 1 (`pretrain.contrastive`)."""

    queue_size: int  # K: keys kept as extra negatives
    momentum: float  # m: EMA rate of the key encoder
    tau: float  # temperature
    window: int  # positives: same clip, at most this many frames apart ...
    va_threshold: float  # ... and VA distance below this; negatives: above it
    w_local: float
    w_global: float
    w_smooth: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.queue_size < 1 or self.tau <= 0:
            raise ValueError(f"need queue_size >= 1 and tau > 0, got {self.queue_size}, {self.tau}")


def concat_all_gather(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Concatenate tensors from every process along dim 0 (a no-op in a single process).

    Processes may hold different numbers of rows (padding frames are dropped before this), so
    rows are padded to a common length with a marker and the padding removed after gathering.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return tensors
    if torch.distributed.get_world_size() == 1:
        return tensors
    from accelerate.utils import gather, pad_across_processes

    n = tensors[0].shape[0]
    # a long mask: padding a bool tensor (`zeros + pad_index`) promotes it to int64 in the
    # padded processes only, and gloo then sees mismatched sizes
    keep = torch.ones(n, dtype=torch.long, device=tensors[0].device)
    keep = gather(pad_across_processes(keep, pad_index=0)).bool()
    return tuple(gather(pad_across_processes(t, pad_index=0))[keep] for t in tensors)


class MemoryQueue(nn.Module):
    """FIFO queue of K keys with their VA labels and clip ids (empty slots: NaN VA, clip -1)."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("keys", torch.zeros(size, dim))
        self.register_buffer("va", torch.full((size, 2), float("nan")))
        self.register_buffer("clip", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: Tensor, va: Tensor, clip: Tensor) -> None:
        """Overwrite the oldest slots with (gathered) new keys, wrapping around."""
        keys, va, clip = concat_all_gather(keys, va, clip)
        size = self.keys.shape[0]
        keys, va, clip = keys[-size:], va[-size:], clip[-size:]  # more than K: keep the newest
        idx = (self.ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.keys[idx] = keys.to(self.keys.dtype)
        self.va[idx] = va.to(self.va.dtype)
        self.clip[idx] = clip
        self.ptr.fill_(int((self.ptr + keys.shape[0]) % size))


class ContrastivePretrainer(nn.Module):
    """Wraps a `VAModel`; `forward(batch)` returns the stage-1 losses."""

    def __init__(self, model: VAModel, cfg: ContrastiveConfig):
        """`model` must already have its trainable parts chosen (`trainable_parameters`) and
        its feature statistics set: the key encoder starts as an exact copy of it."""
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.key_model = copy.deepcopy(model).requires_grad_(False).eval()
        self.queue = MemoryQueue(cfg.queue_size, model.cfg.embed_dim)

    def train(self, mode: bool = True) -> ContrastivePretrainer:
        """The key encoder always runs without dropout, as MoCo v2's has none."""
        super().train(mode)
        self.key_model.eval()
        return self

    @torch.no_grad()
    def momentum_update(self) -> None:
        """key = m * key + (1 - m) * query for every trainable tensor of the query path; the
        frozen ones stay bit-identical copies (an EMA of two equal floats can drift by an ulp)."""
        m = self.cfg.momentum
        keys = dict(self.key_model.named_parameters())
        for name, pq in self.model.named_parameters():
            if pq.requires_grad:
                keys[name].mul_(m).add_(pq.detach(), alpha=1.0 - m)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        valid = batch["valid"]
        b, n = valid.shape
        out = self.model(batch["x"], valid)
        if self.training:
            self.momentum_update()
        with torch.no_grad():
            k = self.key_model(batch["x"], valid)["z"][valid]  # (N, E), N = valid frames
        q = out["z"][valid]  # (N, E)
        va = batch["va"][valid].float()  # (N, 2)
        frame_clip = batch["clip"][:, None].expand(b, n)[valid]  # (N,)
        owner = torch.arange(b, device=valid.device)[:, None].expand(b, n)[valid]  # (N,)
        # snapshot: the queue is updated in place below (MoCo clones it the same way). In eval
        # mode the queue is left out, so validation losses of different epochs (queue filling
        # up in between) stay comparable for model selection.
        keep = self.queue.keys.shape[0] if self.training else 0
        queue = (self.queue.keys, self.queue.va, self.queue.clip)
        qk, qva, qclip = (t[:keep].clone() for t in queue)
        c = self.cfg
        local = local_local_infonce(
            q, k, va, frame_clip, batch["t"][valid], qk, qva, c.window, c.va_threshold, c.tau
        )
        glob = global_local_infonce(out["g"], k, owner, batch["clip"], frame_clip, qk, qclip, c.tau)
        smooth = smoothness(out["z"], valid)
        if self.training:
            self.queue.enqueue(k, va, frame_clip)
        loss = c.w_local * local + c.w_global * glob + c.w_smooth * smooth
        return {"loss": loss, "local": local, "global": glob, "smooth": smooth}

    def checkpoint_state(self) -> dict[str, Tensor]:
        """Stage 1 hands on the VA model; the queue and key encoder are training machinery."""
        return self.model.checkpoint_state()

    def load_checkpoint_state(self, state: dict[str, Tensor]) -> None:
        self.model.load_checkpoint_state(state)
