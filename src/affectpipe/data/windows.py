"""Clips cut into fixed-length windows: random ones for training, sliding ones for evaluation
and prediction, whose outputs `overlap_average` turns back into one value per frame.

Training samples windows of L consecutive frames (uniformly over all start positions, so long
clips count in proportion to their frames). Validation and test cover every frame of every clip
deterministically with overlapping windows and average a frame's predictions over the windows
that contain it. Clips shorter than L become one padded window with a `valid` mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from affectpipe.config import params_section


@dataclass
class ClipData:
    """One clip's inputs and labels, held in memory."""

    clip_id: str
    x: np.ndarray  # (n, dim) frame features or flattened cached hidden states
    va: np.ndarray  # (n, 2) float32 valence, arousal in [-1, 1]
    frames: np.ndarray  # (n,) frame indices
    split: str
    actor: str

    def __len__(self) -> int:
        return int(self.x.shape[0])


@params_section
class WindowConfig:
    """How clips are cut into windows and batched (`pretrain.window`, `finetune.window`)."""

    length: int  # L: frames per window
    batch_size: int
    windows_per_epoch: int | None  # null: every start position once per epoch
    eval_stride: int  # sliding-window step for validation and test

    def __post_init__(self) -> None:
        if self.length < 2 or self.batch_size < 1 or not 1 <= self.eval_stride <= self.length:
            raise ValueError(
                f"need length >= 2, batch_size >= 1, 1 <= eval_stride <= length; got "
                f"length={self.length}, batch_size={self.batch_size}, "
                f"eval_stride={self.eval_stride}"
            )


def window_starts(n: int, length: int, stride: int) -> list[int]:
    """Starts of sliding windows covering all n frames; the last window ends at frame n."""
    if n <= length:
        return [0]
    starts = list(range(0, n - length + 1, stride))
    if starts[-1] + length < n:
        starts.append(n - length)
    return starts


def all_starts(clips: list[ClipData], length: int) -> list[tuple[int, int]]:
    """Every (clip index, start) a training window can take."""
    return [(c, s) for c, clip in enumerate(clips) for s in range(max(len(clip) - length, 0) + 1)]


def sliding_items(clips: list[ClipData], length: int, stride: int) -> list[tuple[int, int]]:
    """(clip index, start) of the evaluation windows, in clip order."""
    return [
        (c, s) for c, clip in enumerate(clips) for s in window_starts(len(clip), length, stride)
    ]


class WindowDataset(Dataset):
    """Windows (clip index, start) of `clips` as padded tensors with a `valid` mask."""

    def __init__(self, clips: list[ClipData], items: list[tuple[int, int]], length: int):
        self.clips, self.items, self.length = clips, items, length

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c, s = self.items[i]
        clip = self.clips[c]
        m = min(self.length, len(clip) - s)
        x = np.zeros((self.length, *clip.x.shape[1:]), dtype=clip.x.dtype)
        va = np.zeros((self.length, 2), dtype=np.float32)
        t = np.zeros(self.length, dtype=np.int64)
        x[:m], va[:m], t[:m] = clip.x[s : s + m], clip.va[s : s + m], clip.frames[s : s + m]
        valid = np.arange(self.length) < m
        return {
            "x": torch.from_numpy(x),
            "va": torch.from_numpy(va),
            "t": torch.from_numpy(t),
            "valid": torch.from_numpy(valid),
            "clip": torch.tensor(c),
            "start": torch.tensor(s),
        }


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


def overlap_average(
    lengths: list[int], clip: np.ndarray, start: np.ndarray, values: np.ndarray
) -> list[np.ndarray]:
    """Average window outputs per frame.

    Args:
        lengths: frames per clip; clip, start: (W,) window positions;
        values: (W, L, C) outputs (padding rows beyond a clip's end are ignored).
    Returns:
        One (n_c, C) array per clip. Raises if a frame is covered by no window.
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    w, length, c = values.shape
    frame = start[:, None] + np.arange(length)[None, :]  # (W, L) frame index in its clip
    inside = frame < np.asarray(lengths)[clip][:, None]  # (W, L)
    flat = (offsets[clip][:, None] + frame)[inside]  # (M,) global frame row
    total = np.zeros((offsets[-1], c))
    count = np.zeros(offsets[-1])
    np.add.at(total, flat, values[inside])
    np.add.at(count, flat, 1)
    if (count == 0).any():
        missing = int((count == 0).sum())
        raise ValueError(f"{missing} frame(s) are covered by no evaluation window")
    mean = total / count[:, None]
    return [mean[offsets[i] : offsets[i + 1]] for i in range(len(lengths))]
