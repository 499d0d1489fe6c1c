"""Regression metrics against audmetric, numpy and hand-computed cases."""

import audmetric
import numpy as np
import pytest

from affectpipe import metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ccc_matches_audmetric(seed):
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, 300)
    p = 0.6 * t + rng.normal(0.1, 0.3, 300)
    assert metrics.ccc(t, p) == pytest.approx(audmetric.concordance_cc(t, p), abs=1e-6)


def test_ccc_hand_computed_uses_population_moments():
    # t = [0, 1, 2], p = [0, 1, 1]: cov = 1/3, var_t = 2/3, var_p = 2/9, means 1 and 2/3
    expected = 2 * (1 / 3) / (2 / 3 + 2 / 9 + (1 / 3) ** 2)
    assert metrics.ccc([0, 1, 2], [0, 1, 1]) == pytest.approx(expected)


def test_ccc_penalises_offset_and_scale_that_pearson_ignores():
    t = np.linspace(-1, 1, 50)
    assert metrics.pearson(t, 0.5 * t + 0.3) == pytest.approx(1.0)
    assert metrics.ccc(t, 0.5 * t + 0.3) < 0.8
    assert metrics.ccc(t, t) == pytest.approx(1.0)


def test_degenerate_inputs_give_nan_not_a_number_that_looks_valid():
    assert np.isnan(metrics.ccc([0.5], [0.5]))
    assert np.isnan(metrics.ccc([0.2, 0.2], [0.2, 0.2]))
    assert np.isnan(metrics.pearson([1, 2, 3], [1, 1, 1]))
    assert metrics.ccc([1, 2, 3], [1, 1, 1]) == pytest.approx(0.0)


def test_constant_predictions_give_nan_pearson_and_exactly_zero_ccc():
    # constants whose mean is not exactly representable: their deviations are rounding noise
    rng = np.random.default_rng(4)
    t = rng.uniform(-1, 1, 97)
    for c in rng.uniform(-1, 1, 200):
        p = np.full(97, c)
        assert np.isnan(metrics.pearson(t, p)), c
        assert np.isnan(metrics.pearson(p, t)), c
        r = metrics.ccc(t, p)
        assert r == 0.0 and np.copysign(1.0, r) == 1.0, (c, r)  # no -0.0 either


def test_a_small_but_real_spread_is_not_constant():
    t = np.linspace(-1, 1, 50)
    assert metrics.pearson(t, 1.0 + 1e-6 * t) == pytest.approx(1.0)


def test_pearson_and_rmse_match_numpy():
    rng = np.random.default_rng(3)
    t, p = rng.normal(size=100), rng.normal(size=100)
    assert metrics.pearson(t, p) == pytest.approx(np.corrcoef(t, p)[0, 1])
    assert metrics.rmse([0, 0], [3, 4]) == pytest.approx(np.sqrt(12.5))


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="y_true has 3 values but y_pred has 2"):
        metrics.ccc([1, 2, 3], [1, 2])


def test_pooled_and_per_clip_ccc_differ_when_clips_have_offsets():
    t = np.concatenate([np.linspace(0, 1, 20), np.linspace(-1, 0, 20)])
    p = np.concatenate([np.linspace(0, 1, 20), np.linspace(0, 1, 20)])  # clip 2 shifted by +1
    clips = np.repeat([0, 1], 20)
    per_clip = metrics.per_clip_mean(metrics.ccc, t, p, clips)
    assert per_clip == pytest.approx(np.mean([1.0, metrics.ccc(t[20:], p[20:])]))
    assert metrics.ccc(t, p) != pytest.approx(per_clip)


def test_va_report_has_flat_names_and_mean():
    rng = np.random.default_rng(0)
    true = rng.uniform(-1, 1, (60, 2))
    pred = true + rng.normal(0, 0.2, (60, 2))
    r = metrics.va_report(true, pred, np.repeat([0, 1, 2], 20))
    assert set(r) == {
        f"{m}_{d}" for m in ("ccc", "ccc_clip", "pearson", "rmse") for d in ("valence", "arousal")
    } | {"ccc_mean"}
    assert r["ccc_mean"] == pytest.approx((r["ccc_valence"] + r["ccc_arousal"]) / 2)
    with pytest.raises(ValueError, match=r"expected \(N, 2\) arrays"):
        metrics.va_report(true[:, :1], pred[:, :1], np.zeros(60))
