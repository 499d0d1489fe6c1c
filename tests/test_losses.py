"""Each loss on small hand-computed cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from affectpipe import losses


def test_masked_info_nce_excludes_neither_pairs_from_denominator():
    logits = torch.tensor([[2.0, 1.0, 5.0, 0.0]])
    pos = torch.tensor([[True, False, False, False]])
    neg = torch.tensor([[False, True, False, True]])  # column 2 is neither: ignored
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + math.exp(0)))
    assert losses.masked_info_nce(logits, pos, neg).item() == pytest.approx(expected, rel=1e-6)


def test_masked_info_nce_averages_over_positive_pairs():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]])
    pos = torch.tensor([[True, True, False], [False, False, True]])
    neg = torch.tensor([[False, False, True], [True, False, False]])

    def term(lp, ln):
        return -math.log(math.exp(lp) / (math.exp(lp) + sum(math.exp(x) for x in ln)))

    expected = (term(1.0, [0.5]) + term(2.0, [0.5]) + term(3.0, [0.0])) / 3
    assert losses.masked_info_nce(logits, pos, neg).item() == pytest.approx(expected, rel=1e-6)


def test_masked_info_nce_without_positives_is_zero_and_differentiable():
    logits = torch.randn(2, 3, requires_grad=True)
    out = losses.masked_info_nce(
        logits, torch.zeros(2, 3, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)
    )
    out.backward()
    assert out.item() == 0.0 and logits.grad is not None


def _unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_local_local_positives_negatives_and_queue_by_hand():
    # frames 0,1: clip 0, adjacent, same VA -> positives of each other;
    # frame 2: clip 0 but far in time and VA far -> negative; queue: one far, one near, one empty
    q = _unit([1, 0], [0, 1], [1, 1])
    k = _unit([1, 0], [0, 1], [-1, 1])
    va = torch.tensor([[0.0, 0.0], [0.0, 0.1], [1.0, 1.0]])
    clip = torch.tensor([0, 0, 0])
    t = torch.tensor([0, 1, 10])
    queue_k = _unit([0, -1], [1, 0], [1, 1])
    queue_va = torch.tensor([[-1.0, -1.0], [0.0, 0.05], [float("nan"), float("nan")]])
    tau = 0.5
    out = losses.local_local_infonce(q, k, va, clip, t, queue_k, queue_va, 2, 0.5, tau)

    def sim(a, b):
        return float(a @ b) / tau

    # anchor 0: positive k1; negatives k2 (VA far) and queue 0 (VA far)
    l0 = -sim(q[0], k[1]) + math.log(
        math.exp(sim(q[0], k[1])) + math.exp(sim(q[0], k[2])) + math.exp(sim(q[0], queue_k[0]))
    )
    l1 = -sim(q[1], k[0]) + math.log(
        math.exp(sim(q[1], k[0])) + math.exp(sim(q[1], k[2])) + math.exp(sim(q[1], queue_k[0]))
    )
    assert out.item() == pytest.approx((l0 + l1) / 2, rel=1e-5)


def test_local_local_never_pairs_a_frame_with_itself():
    q = _unit([1, 0])
    out = losses.local_local_infonce(
        q,
        q,
        torch.zeros(1, 2),
        torch.zeros(1, dtype=torch.long),
        torch.zeros(1),
        torch.zeros(0, 2),
        torch.zeros(0, 2),
        3,
        0.2,
        0.1,
    )
    assert out.item() == 0.0


def test_global_local_pulls_own_frames_pushes_other_clips_and_queue():
    g = _unit([1, 0], [0, 1])
    k = _unit([1, 0], [1, 1], [0, 1])
    owner = torch.tensor([0, 0, 1])
    window_clip = torch.tensor([5, 7])
    frame_clip = torch.tensor([5, 5, 7])
    queue_k = _unit([-1, 0], [0, -1])
    queue_clip = torch.tensor([7, -1])  # slot 1 empty
    tau = 1.0
    out = losses.global_local_infonce(
        g, k, owner, window_clip, frame_clip, queue_k, queue_clip, tau
    )

    def term(gi, kp, negs):
        lp = float(gi @ kp)
        return -lp + math.log(math.exp(lp) + sum(math.exp(float(gi @ n)) for n in negs))

    # window 0 (clip 5): negatives = frame 2 (clip 7) and queue slot 0 (clip 7)
    # window 1 (clip 7): negatives = frames 0, 1 (clip 5); queue slot 0 is its own clip
    terms = [
        term(g[0], k[0], [k[2], queue_k[0]]),
        term(g[0], k[1], [k[2], queue_k[0]]),
        term(g[1], k[2], [k[0], k[1]]),
    ]
    assert out.item() == pytest.approx(sum(terms) / 3, rel=1e-5)


def test_smoothness_is_mean_squared_step_over_valid_pairs():
    z = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 2.0], [9.0, 9.0]]])
    valid = torch.tensor([[True, True, True, False]])
    assert losses.smoothness(z, valid).item() == pytest.approx((1.0 + 4.0) / 2)


def test_ccc_per_dim_and_regression_loss_weights():
    y = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [5.0, 5.0]]])
    p = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
    valid = torch.tensor([[True, True, True, False]])
    ccc_v = 2 * (1 / 3) / (2 / 3 + 2 / 9 + (1 / 3) ** 2)  # [0,1,2] vs [0,1,1]
    out = losses.va_regression_loss(p, y, valid, w_mse=2.0, w_ccc=0.5)
    mse = 1.0 / 6  # one error of 1 among 6 values
    assert out["ccc"].item() == pytest.approx((ccc_v + 1.0) / 2, rel=1e-5)
    assert out["loss"].item() == pytest.approx(2.0 * mse + 0.5 * (1 - out["ccc"].item()), rel=1e-5)
