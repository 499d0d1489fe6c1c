"""Figures: written, readable, and byte-identical for the same data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectpipe import plots


def va_frames(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 30
    true = np.clip(rng.normal(0, 0.5, size=(2 * n, 2)), -1, 1)
    return pd.DataFrame(
        {
            "clip": ["001"] * n + ["002"] * n,
            "frame": list(range(n)) * 2,
            "valence_true": true[:, 0],
            "arousal_true": true[:, 1],
            "valence_pred": true[:, 0] * 0.8,
            "arousal_pred": true[:, 1] * 0.7,
        }
    )


def congruence_pairs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    kinds = ["congruent"] * 20 + ["easy"] * 10 + ["hard"] * 10
    congruent = np.array([k == "congruent" for k in kinds], dtype=int)
    return pd.DataFrame(
        {
            "kind": kinds,
            "congruent": congruent,
            "congruence_prob": rng.random(40) * 0.5 + congruent * 0.4,
        }
    )


FIGURES = {
    "va_space": lambda p: plots.plot_va_space(va_frames(), p, "VA space"),
    "va_traces": lambda p: plots.plot_va_traces(va_frames(), p, "traces"),
    "pca": lambda p: plots.plot_embeddings(
        np.random.default_rng(0).normal(size=(40, 8)),
        {"valence": np.linspace(-1, 1, 40), "emotion": np.arange(40) % 3},
        p,
        "embeddings",
        categories={"emotion": ["a", "b", "c"]},
    ),
    "roc": lambda p: plots.plot_congruence_roc(congruence_pairs(), p, "ROC"),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_is_a_png_with_identical_bytes_for_identical_data(tmp_path: Path, name: str):
    FIGURES[name](tmp_path / "a.png")
    FIGURES[name](tmp_path / "b.png")
    data = (tmp_path / "a.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert data == (tmp_path / "b.png").read_bytes()


def test_umap_projection_is_seeded():
    x = np.random.default_rng(0).normal(size=(30, 6))
    a = plots.project_2d(x, "umap", seed=1)
    assert a.shape == (30, 2)
    np.testing.assert_allclose(a, plots.project_2d(x, "umap", seed=1))


def test_unknown_projection_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"valid: \['pca', 'umap'\]"):
        plots.project_2d(np.zeros((4, 2)), "tsne", seed=0)


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_too_few_points_to_project_give_a_figure_saying_so(tmp_path: Path, method: str):
    path = tmp_path / "one_clip.png"
    one = np.ones((1, 4))
    plots.plot_embeddings(one, {"valence": np.zeros(1)}, path, "one test clip", method)
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="needs at least"):
        plots.project_2d(one, method, seed=0)


def test_confusion_plot_data_uses_class_names():
    df = plots.confusion_plot_data(np.array([0, 1]), np.array([1, 1]), ["neutral", "calm"])
    assert df.to_dict("list") == {"actual": ["neutral", "calm"], "predicted": ["calm", "calm"]}
