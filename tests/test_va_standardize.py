"""Feature standardisation with training statistics and the linear path of the VA heads."""

import numpy as np
import pytest
import torch

from affectpipe.data.windows import ClipData
from affectpipe.models.heads import RegressionHead
from affectpipe.models.va import VAModel, resolve_standardize
from affectpipe.train.va import feature_stats
from tests.va_configs import model_config


def _clips(x: np.ndarray, per_clip: int = 50) -> list[ClipData]:
    out = []
    for i in range(0, len(x), per_clip):
        part = x[i : i + per_clip]
        n = len(part)
        out.append(ClipData(f"{i}", part, np.zeros((n, 2), np.float32), np.arange(n), "train", ""))
    return out


def _correlated(n=400, d=8, seed=0) -> np.ndarray:
    """Strongly correlated features: a few large directions, the rest tiny, nonzero mean."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(5.0, 0.1, d)
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return (rng.normal(size=(n, d)) * scales @ basis.T + 3.0).astype(np.float32)


def _standardised(mode: str, x: np.ndarray) -> torch.Tensor:
    """What the heads read (f, no temporal layers: lora-free probe-like cached model)."""
    model = VAModel(model_config("cached", x.shape[1], standardize=mode, tf_layers=0, tf_heads=1))
    model.set_feature_stats(*feature_stats(model, _clips(x), covariance=mode == "whiten"))
    model.temporal = None  # look at the standardised input itself
    with torch.no_grad():
        heads = model.heads(torch.from_numpy(x)[None], torch.ones(1, len(x), dtype=torch.bool))
    return heads["f"][0]


def test_feature_stats_match_numpy_mean_variance_and_covariance():
    x = _correlated()
    model = VAModel(model_config("cached", 8, tf_heads=1))
    mean, var = feature_stats(model, _clips(x), covariance=False)
    _, cov = feature_stats(model, _clips(x), covariance=True)
    np.testing.assert_allclose(mean.numpy(), x.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(var.numpy(), x.var(0), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.T, bias=True), rtol=1e-3, atol=1e-5)


def test_diag_gives_zero_mean_unit_std_per_dimension():
    f = _standardised("diag", _correlated()).numpy()
    np.testing.assert_allclose(f.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(f.std(0), 1, rtol=1e-3)
    off = np.corrcoef(f.T)[~np.eye(8, dtype=bool)]
    assert np.abs(off).max() > 0.3  # correlations stay


def test_whiten_gives_near_identity_covariance():
    f = _standardised("whiten", _correlated()).numpy()
    cov = np.cov(f.T, bias=True)
    np.testing.assert_allclose(f.mean(0), 0, atol=1e-3)
    # every direction near unit variance, the 50x smaller ones too (ridge: 1e-4 * mean eig)
    np.testing.assert_allclose(np.linalg.eigvalsh(cov), 1, atol=0.06)


def test_stats_are_buffers_saved_in_the_checkpoint_state():
    x = _correlated()
    a = VAModel(model_config("cached", 8, tf_heads=1, standardize="whiten"))
    a.set_feature_stats(*feature_stats(a, _clips(x), covariance=True))
    b = VAModel(model_config("cached", 8, tf_heads=1, standardize="whiten"))
    state = a.checkpoint_state()
    assert "feat_mean" in state and state["feat_scale"].shape == (8, 8)
    b.load_checkpoint_state(state)
    torch.testing.assert_close(b.feat_scale, a.feat_scale)
    with pytest.raises(ValueError, match="missing"):
        b.load_checkpoint_state({k: v for k, v in state.items() if not k.startswith("feat_")})


def test_auto_whitens_only_with_at_least_four_frames_per_dimension():
    assert resolve_standardize("auto", feat_dim=64, n_frames=640) == "whiten"
    assert resolve_standardize("auto", feat_dim=1088, n_frames=640) == "diag"
    assert resolve_standardize("none", feat_dim=8, n_frames=10_000) == "none"
    with pytest.raises(ValueError, match="must be resolved first"):
        VAModel(model_config("cached", 8, tf_heads=1, standardize="auto"))
    with pytest.raises(ValueError, match="unknown standardize 'zscore'"):
        model_config("cached", 8, standardize="zscore")


def test_wrong_stat_shapes_are_refused():
    model = VAModel(model_config("cached", 8, tf_heads=1, standardize="diag"))
    with pytest.raises(ValueError, match=r"expected \(8,\)/\(8,\) for standardize 'diag'"):
        model.set_feature_stats(torch.zeros(8), torch.eye(8))


def test_linear_path_starts_at_zero_and_then_learns_a_linear_target():
    torch.manual_seed(0)
    head = RegressionHead(dim=4, hidden=8, skip_dim=6)
    plain = RegressionHead(dim=4, hidden=8)
    plain.net.load_state_dict(head.net.state_dict())
    h, f = torch.randn(32, 4), torch.randn(32, 6)
    torch.testing.assert_close(head(h, f), plain(h))
    with pytest.raises(ValueError, match="pass the features f"):
        head(h)
    target = torch.tanh(f @ torch.randn(6, 2) * 0.5)
    opt = torch.optim.Adam(head.skip.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss = (head(h, f) - target).pow(2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * (plain(h) - target).pow(2).mean().item()
    assert head.skip.weight.abs().sum() > 0


def test_linear_path_off_builds_the_plain_head():
    model = VAModel(model_config("cached", 8, tf_heads=1, linear_path=False))
    assert model.regressor.skip is None
    out = model(torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.bool))
    assert out["va"].shape == (1, 3, 2)
