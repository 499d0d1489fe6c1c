"""A trained VA model run over sliding windows: per-frame predictions and embeddings.

Every frame is covered by overlapping windows (`window.length` frames, `window.eval_stride`
apart) and a frame's outputs are averaged over the windows that hold it (`overlap_average`).
Validation during finetune, the evaluate stage and `affectpipe predict` all go through here, so
a frame is predicted the same way wherever it is scored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from affectpipe.data.va_clips import VAFold, check_same_inputs, open_inputs, split_clips
from affectpipe.data.windows import (
    ClipData,
    WindowConfig,
    eval_loader,
    overlap_average,
    window_starts,
)
from affectpipe.models.checkpoint import MODEL_FILE
from affectpipe.models.load import load_va_model, saved_config
from affectpipe.models.va import VAModel


def window_outputs(model: nn.Module, loader: DataLoader, acc=None) -> dict[str, np.ndarray]:
    """Run `model` over evaluation windows; gather `va`, `z` and `g` (models that have them),
    clip and start of each."""
    device = acc.device if acc is not None else next(model.parameters()).device
    parts: dict[str, list[np.ndarray]] = {}
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(batch["x"], batch["valid"])
        rows = {k: out[k] for k in ("va", "z", "g") if k in out}
        rows |= {"clip": batch["clip"], "start": batch["start"]}
        if acc is not None:  # drops the samples padded onto the last batch of each process
            rows = acc.gather_for_metrics(rows)
        for k, v in rows.items():
            value = v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
            parts.setdefault(k, []).append(value)
    return {k: np.concatenate(v) for k, v in parts.items()}


def frame_values(clips: list[ClipData], outputs: dict[str, np.ndarray], key: str = "va"):
    """Window outputs `key` averaged per frame: one (n_c, C) array per clip."""
    lengths = [len(c) for c in clips]
    return overlap_average(lengths, outputs["clip"], outputs["start"], outputs[key])


@dataclass(frozen=True)
class VideoVA:
    """One video's VA: per frame (windows averaged) and per window, windows `starts` frames."""

    frames: np.ndarray  # (T, 2) valence, arousal
    starts: np.ndarray  # (W,) first frame of each window
    windows: np.ndarray  # (W, L', 2): each window's own predictions; L' = min(L, T)


class StreamingVA:
    """`video_va` fed a video's frame features as they are embedded (`add`, in order): each
    window runs as soon as its frames are in, and only the frames a later window still needs
    are held, so memory does not grow with the video's length (each window's own (L, 2)
    outputs are kept for the record). `result` gives what `video_va` gives on all of them."""

    def __init__(self, model: VAModel, window: WindowConfig, stride: int | None = None):
        self.model, self.length = model, window.length
        self.stride = stride or window.eval_stride
        self.held: torch.Tensor | None = None  # frames from `first` on
        self.first = self.n = 0
        self.starts: list[int] = []
        self.values: list[np.ndarray] = []

    @torch.no_grad()
    def _run(self, start: int) -> None:
        assert self.held is not None
        x = self.held[start - self.first : start - self.first + self.length][None]  # (1, L, D)
        valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        self.values.append(self.model.heads(x, valid)["va"][0].float().cpu().numpy())  # (L, 2)
        self.starts.append(start)

    def add(self, f: torch.Tensor) -> None:
        """The next frames' features (T, D)."""
        self.held = f if self.held is None else torch.cat([self.held, f])
        self.n += f.shape[0]
        start = len(self.starts) * self.stride
        while start + self.length <= self.n:  # the strided windows that are complete
            self._run(start)
            start += self.stride
        keep = max(0, min(start, self.n - self.length))  # the next window, or the last one
        self.held, self.first = self.held[keep - self.first :], keep

    def result(self) -> VideoVA:
        """The windows still owed (the last, ending at the last frame; the one window of a
        video shorter than a window), then every frame's average over its windows."""
        starts = window_starts(self.n, self.length, self.stride)
        for s in starts[len(self.starts) :]:
            self._run(s)
        if self.starts != starts:
            raise RuntimeError(f"windows at {self.starts[:5]}..., expected {starts[:5]}...")
        clip = np.zeros(len(starts), dtype=np.int64)
        per_window = np.stack(self.values)
        frames = overlap_average([self.n], clip, np.asarray(starts), per_window)[0]
        return VideoVA(frames, np.asarray(starts, dtype=np.int64), per_window)


def video_va(model: VAModel, f: torch.Tensor, window: WindowConfig,
             stride: int | None = None) -> VideoVA:  # fmt: skip
    """VA of one video's frame features (T, D), windowed as evaluation windows a clip:
    `window.length` consecutive frames, `stride` (default `window.eval_stride`) apart."""
    stream = StreamingVA(model, window, stride)
    stream.add(f)
    return stream.result()


@torch.no_grad()
def _run(ckpt_dir: Path, inputs: Path, split: str, batch_size: int | None):
    model, ckpt = load_va_model(ckpt_dir)
    model.eval()
    window = saved_config(WindowConfig, ckpt["config"]["window"], ckpt_dir / MODEL_FILE)
    if batch_size:
        window = replace(window, batch_size=batch_size)
    fold = VAFold.from_record(ckpt["provenance"].get("fold"))  # the split it was trained on
    with open_inputs(inputs, model.cfg.pipeline) as reader:
        check_same_inputs(ckpt, reader)
        clips = split_clips(reader, split, fold)
    return model, clips, window_outputs(model, eval_loader(clips, window))


def _frame_table(clips: list[ClipData], truth: str) -> dict[str, np.ndarray]:
    return {
        "clip": np.concatenate([[c.clip_id] * len(c) for c in clips]),
        "frame": np.concatenate([c.frames for c in clips]),
        f"valence{truth}": np.concatenate([c.va[:, 0] for c in clips]),
        f"arousal{truth}": np.concatenate([c.va[:, 1] for c in clips]),
    }


def predict_va(
    ckpt_dir: Path, inputs: Path, split: str = "test", batch_size: int | None = None
) -> pd.DataFrame:
    """One row per frame of `split` (of the fold the checkpoint was trained on): clip, frame,
    valence/arousal true and predicted."""
    _, clips, w = _run(Path(ckpt_dir), Path(inputs), split, batch_size)
    pred = frame_values(clips, w)
    return pd.DataFrame(
        {
            **_frame_table(clips, "_true"),
            "valence_pred": np.concatenate([p[:, 0] for p in pred]),
            "arousal_pred": np.concatenate([p[:, 1] for p in pred]),
        }
    )


def embed_va(
    ckpt_dir: Path, inputs: Path, split: str = "test", batch_size: int | None = None
) -> dict[str, Any] | None:
    """Embeddings for plots: `frames` (clip, frame, valence, arousal) with `z` (N, E) frame
    embeddings averaged over windows, and `clips` (clip, valence, arousal means) with `g`
    (C, E) clip embeddings averaged over each clip's windows. Any checkpoint of a model with
    embeddings, stage 1's or stage 2's; `None` for one without (the linear probe)."""
    model, clips, w = _run(Path(ckpt_dir), Path(inputs), split, batch_size)
    if not model.has_embeddings:
        return None
    z = np.concatenate(frame_values(clips, w, "z"))
    g = np.stack([w["g"][w["clip"] == i].mean(0) for i in range(len(clips))])
    clip_df = pd.DataFrame(
        {
            "clip": [c.clip_id for c in clips],
            "valence": [float(c.va[:, 0].mean()) for c in clips],
            "arousal": [float(c.va[:, 1].mean()) for c in clips],
        }
    )
    return {"frames": pd.DataFrame(_frame_table(clips, "")), "z": z, "clips": clip_df, "g": g}
