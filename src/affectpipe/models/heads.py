"""Small heads shared by every VA pipeline: frame projector, temporal pooling, regression.

All embeddings are L2-normalised so that dot products are cosine similarities, as the InfoNCE
terms in `affectpipe.losses` assume.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    """Mean over time of the valid steps. x: (B, L, D), valid: (B, L) -> (B, D)."""
    w = valid.to(x.dtype).unsqueeze(-1)  # (B, L, 1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


class FrameProjector(nn.Module):
    """Per-frame MLP in_dim -> hidden -> out_dim, L2-normalised (the contrastive space)."""

    def __init__(self, in_dim: int, hidden: int = 512, out_dim: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, f: Tensor) -> Tensor:
        return F.normalize(self.net(f), dim=-1)


class TemporalHead(nn.Module):
    """Clip embedding g: masked mean over time -> linear -> L2-norm. (B, L, D) -> (B, D)."""

    def __init__(self, dim: int = 128):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, z: Tensor, valid: Tensor) -> Tensor:
        return F.normalize(self.fc(masked_mean(z, valid)), dim=-1)


class RegressionHead(nn.Module):
    """Per-frame valence and arousal: dim -> hidden -> 2, tanh into [-1, 1].

    With `skip_dim > 0`, a linear path from the (standardised) frame features adds to the
    pre-activation: `tanh(net(h) + skip(f))`. It starts at zero, so gradient descent grows it
    from the smallest-norm solution, as a ridge regression would: on a few hundred frames of
    a few actors, the MLP on the contrastive embedding alone fits identity, the linear path
    keeps the actor-invariant direction that the inputs carry.
    """

    def __init__(self, dim: int = 128, hidden: int = 64, skip_dim: int = 0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 2))
        self.skip: nn.Linear | None = None
        if skip_dim:
            self.skip = nn.Linear(skip_dim, 2)
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)

    def forward(self, h: Tensor, f: Tensor | None = None) -> Tensor:
        out = self.net(h)
        if self.skip is not None:
            if f is None:
                raise ValueError("this regression head has a linear path: pass the features f")
            out = out + self.skip(f)
        return torch.tanh(out)


class LinearVA(nn.Module):
    """The linear probe's whole head: one linear layer, frame feature (D) -> valence, arousal,
    no activation. It starts at zero (the smallest-norm solution gradient descent grows from,
    as for `RegressionHead`'s linear path); its output is unbounded, as a linear probe's is."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 2)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, f: Tensor) -> Tensor:
        return self.linear(f)


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal positional encoding (Vaswani et al. 2017), a buffer so it moves with the
    model and needs no training data for unseen window positions."""

    def __init__(self, dim: int, max_len: int = 1024):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]  # (T, 1)
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(1e4) / dim))
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(f"window of {x.shape[1]} frames exceeds max_len {self.pe.shape[0]}")
        return x + self.pe[: x.shape[1]].to(x.dtype)  # (B, L, D) + (L, D)


class TemporalTransformer(nn.Module):
    """A few pre-LN transformer layers over a window of frame features, residual to the input
    (so a freshly initialised block starts close to the frozen features). (B, L, D) -> (B, L, D)."""

    def __init__(
        self, dim: int, layers: int = 2, heads: int = 4, ff: int = 256, dropout: float = 0.1
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"temporal transformer: dim {dim} is not divisible by heads {heads}")
        self.pos = SinusoidalPositions(dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, f: Tensor, valid: Tensor) -> Tensor:
        h = self.encoder(self.pos(f), src_key_padding_mask=~valid)
        return self.norm(h)
