"""Training losses as pure tensor functions (models return outputs; callers pick the loss).

The VA models' contrastive and regression terms, and the multimodal models' emotion and
congruence terms (`av_loss`).

Contrastive terms follow MoCo (He et al. 2020) with multiple positives: for an anchor `i` and
each of its positives `p`, the term is -log(exp(l_ip) / (exp(l_ip) + sum_n exp(l_in))), with
`l = q.k / tau` and `n` running over the anchor's negatives only. Candidates that are neither
positive nor negative are left out of the denominator (they are ambiguous, not dissimilar).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from affectpipe.config import params_section
from affectpipe.data.labels import N_EMOTIONS


def masked_info_nce(logits: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """Mean multi-positive InfoNCE over all positive pairs.

    Args:
        logits: (N, M) similarities already divided by the temperature.
        pos: (N, M) bool, pair (i, j) is a positive.
        neg: (N, M) bool, pair (i, j) is a negative (disjoint from `pos`).
    Returns:
        Scalar; 0 (still attached to the graph) when there is no positive pair.
    """
    assert not (pos & neg).any(), "a pair cannot be both positive and negative"
    neg_lse = torch.logsumexp(logits.masked_fill(~neg, float("-inf")), dim=1)  # (N,)
    pair = torch.logaddexp(logits, neg_lse[:, None]) - logits  # (N, M): -log softmax of l_ip
    if not pos.any():
        return logits.sum() * 0.0
    return pair[pos].mean()


def local_local_infonce(
    q: Tensor,
    k: Tensor,
    va: Tensor,
    clip: Tensor,
    t: Tensor,
    queue_k: Tensor,
    queue_va: Tensor,
    window: int,
    threshold: float,
    tau: float,
) -> Tensor:
    """Frame-to-frame InfoNCE with VA-aware positives and negatives.

    Positives of frame i: other frames of the same clip within `window` frames whose VA
    (Euclidean) distance is below `threshold`. Negatives: batch frames and queue keys whose VA
    distance exceeds `threshold` (queue slots with NaN labels are still empty and never count).

    Args:
        q: (N, D) L2-normalised anchors; k: (N, D) momentum keys of the same frames.
        va: (N, 2); clip: (N,) clip ids; t: (N,) frame indices.
        queue_k: (K, D) keys; queue_va: (K, 2) their labels.
    """
    n = q.shape[0]
    l_batch = q @ k.T / tau  # (N, N)
    l_queue = q @ queue_k.T / tau  # (N, K)
    d_batch = torch.cdist(va, va)  # (N, N)
    d_queue = torch.cdist(va, queue_va.nan_to_num(nan=0.0))  # (N, K)
    filled = torch.isfinite(queue_va).all(dim=1)  # (K,)
    eye = torch.eye(n, dtype=torch.bool, device=q.device)
    near = (t[:, None] - t[None, :]).abs() <= window
    pos = (clip[:, None] == clip[None, :]) & near & (d_batch < threshold) & ~eye
    neg_batch = d_batch > threshold
    neg_queue = (d_queue > threshold) & filled[None, :]
    logits = torch.cat([l_batch, l_queue], dim=1)  # (N, N+K)
    pos = torch.cat([pos, torch.zeros_like(neg_queue)], dim=1)
    neg = torch.cat([neg_batch, neg_queue], dim=1)
    return masked_info_nce(logits, pos, neg)


def global_local_infonce(
    g: Tensor,
    k: Tensor,
    owner: Tensor,
    window_clip: Tensor,
    frame_clip: Tensor,
    queue_k: Tensor,
    queue_clip: Tensor,
    tau: float,
) -> Tensor:
    """Clip-to-frame InfoNCE: each clip embedding is pulled to its own frames' keys and pushed
    from frames of other clips (in the batch and in the queue).

    Args:
        g: (B, D) clip embeddings; k: (N, D) frame keys.
        owner: (N,) index in [0, B) of the window each frame belongs to.
        window_clip: (B,) clip id of each window; frame_clip: (N,) clip id of each frame.
        queue_k: (K, D); queue_clip: (K,) clip ids, -1 for empty slots.
    """
    b = g.shape[0]
    l_batch = g @ k.T / tau  # (B, N)
    l_queue = g @ queue_k.T / tau  # (B, K)
    pos = owner[None, :] == torch.arange(b, device=g.device)[:, None]
    neg_batch = frame_clip[None, :] != window_clip[:, None]
    neg_queue = (queue_clip[None, :] != window_clip[:, None]) & (queue_clip[None, :] >= 0)
    logits = torch.cat([l_batch, l_queue], dim=1)  # (B, N+K)
    pos = torch.cat([pos, torch.zeros_like(neg_queue)], dim=1)
    neg = torch.cat([neg_batch, neg_queue], dim=1)
    return masked_info_nce(logits, pos, neg)


def smoothness(z: Tensor, valid: Tensor) -> Tensor:
    """Mean squared distance between consecutive frame embeddings of a window.

    Args:
        z: (B, L, D) frame embeddings; valid: (B, L) bool (padding is False).
    """
    both = valid[:, 1:] & valid[:, :-1]  # (B, L-1)
    sq = (z[:, 1:] - z[:, :-1]).pow(2).sum(-1)  # (B, L-1)
    if not both.any():
        return z.sum() * 0.0
    return sq[both].mean()


def ccc_per_dim(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """CCC of each column with population moments. pred, target: (N, C) -> (C,)."""
    mp, mt = pred.mean(0), target.mean(0)
    vp, vt = pred.var(0, unbiased=False), target.var(0, unbiased=False)
    cov = ((pred - mp) * (target - mt)).mean(0)
    return 2 * cov / (vp + vt + (mp - mt).pow(2) + eps)


def va_regression_loss(
    pred: Tensor, target: Tensor, valid: Tensor, w_mse: float, w_ccc: float
) -> dict[str, Tensor]:
    """`w_mse * MSE + w_ccc * (1 - CCC)`, each averaged over valence and arousal.

    Args:
        pred, target: (B, L, 2); valid: (B, L) bool. CCC is taken over the batch's valid frames.
    Returns:
        {"loss", "mse", "ccc"} (ccc is the mean CCC, for logging).
    """
    p, y = pred[valid], target[valid]  # (M, 2)
    mse = F.mse_loss(p, y)
    ccc = ccc_per_dim(p, y).mean()
    return {"loss": w_mse * mse + w_ccc * (1 - ccc), "mse": mse, "ccc": ccc}


# --- face/voice emotion and congruence (the multimodal models) ---------------------------------

IGNORE = -100  # F.cross_entropy's ignore_index: the fused target of incongruent pairs


@params_section
class LossConfig:
    """The `train_multimodal.loss` params, every model's: how its cross-entropies weigh classes.
    The weights of the terms are each model's own (`affectpipe.train.multimodal.loss_terms`)."""

    balance: Literal["weights", "none"]  # weights: inverse-frequency class weights | none


class PairTargets(Protocol):
    """The training targets `loss_weights` counts (a `data.av_dataset.PairDataset`)."""

    emotion: Tensor
    face_emotion: Tensor
    voice_emotion: Tensor
    congruent: Tensor

    def __len__(self) -> int: ...


def class_weights(targets: Tensor, classes: list[int]) -> Tensor:
    """Inverse-frequency weights over the 8 ids: mean 1 over present classes, 0 for absent."""
    t = targets[targets != IGNORE]
    counts = torch.bincount(t, minlength=N_EMOTIONS).double()
    w = torch.zeros(N_EMOTIONS, dtype=torch.float64)
    idx = torch.tensor(classes)
    seen = idx[counts[idx] > 0]
    w[seen] = 1.0 / counts[seen]
    w[seen] = w[seen] * len(seen) / w[seen].sum()
    return w.float()


def av_loss(
    out: dict[str, Tensor],
    batch: dict[str, Tensor],
    terms: Mapping[str, float],
    weights: dict[str, Tensor],
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of one term per head in `terms` (head -> weight, summed in that order);
    returns (loss, weighted terms).

    An emotion head (`emotion`, `face_emotion`, `voice_emotion`) is trained by cross-entropy
    on its own target; the fused `emotion` has none on incongruent pairs (IGNORE), and a batch
    of those only has no such term. `congruence` is a BCE on `congruent`. `weights` holds the
    class weights per emotion head and `pos_weight` for the BCE (n_incongruent / n_congruent),
    each possibly absent.
    """
    parts: dict[str, Tensor] = {}
    for head, w in terms.items():
        if head == "congruence":
            parts[head] = w * F.binary_cross_entropy_with_logits(
                out[head], batch["congruent"], pos_weight=weights.get("pos_weight")
            )
        elif (batch[head] != IGNORE).any():
            parts[head] = w * F.cross_entropy(
                out[head], batch[head], weight=weights.get(head), ignore_index=IGNORE
            )
    loss = torch.stack(list(parts.values())).sum()
    return loss, parts


def loss_weights(train: PairTargets, classes: list[int], cfg: LossConfig) -> dict[str, Tensor]:
    """Class weights per head and the congruence pos_weight, from the training pairs."""
    if cfg.balance == "none":
        return {}
    n_pos = float(train.congruent.sum())
    n_neg = float(len(train) - n_pos)
    return {
        "emotion": class_weights(train.emotion, classes),
        "face_emotion": class_weights(train.face_emotion, classes),
        "voice_emotion": class_weights(train.voice_emotion, classes),
        "pos_weight": torch.tensor(n_neg / max(n_pos, 1.0)),
    }
