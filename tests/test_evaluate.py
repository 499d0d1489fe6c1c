"""Evaluation helpers: per-clip tables, the mean baseline, VA plots and metrics, and the
record of the VA variant chosen on validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectpipe import metrics
from affectpipe.evaluate import (
    EvaluateConfig,
    VAModels,
    evaluate_all,
    evaluate_va_variant,
    mean_baseline,
    per_clip_table,
)
from affectpipe.problems import InputProblem
from affectpipe.va_selection import select_va, validation_score


def frames(n_clips: int = 3, n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    true = np.tanh(rng.normal(size=(n_clips * n, 2)))
    pred = np.clip(true + rng.normal(0, 0.2, size=true.shape), -1, 1)
    return pd.DataFrame(
        {
            "clip": np.repeat([f"{i:03d}" for i in range(n_clips)], n),
            "frame": np.tile(np.arange(n), n_clips),
            "valence_true": true[:, 0],
            "arousal_true": true[:, 1],
            "valence_pred": pred[:, 0],
            "arousal_pred": pred[:, 1],
        }
    )


def test_per_clip_table_scores_each_clip_on_its_own_frames():
    df = frames()
    table = per_clip_table(df)
    assert list(table["clip"]) == ["000", "001", "002"]
    first = df[df["clip"] == "001"]
    expected = metrics.ccc(first["valence_true"], first["valence_pred"])
    assert table.loc[1, "ccc_valence"] == pytest.approx(expected, abs=1e-6)


def test_mean_baseline_has_zero_ccc_and_rmse_of_the_spread():
    df = frames()
    train = np.array([[0.1, -0.2], [0.3, 0.0]])
    report = mean_baseline(train, df)
    assert report["ccc_valence"] == 0.0 and report["ccc_arousal"] == 0.0
    expected = np.sqrt(np.mean((df["valence_true"] - 0.2) ** 2))
    assert report["rmse_valence"] == pytest.approx(expected, abs=1e-6)


def test_va_variant_metrics_and_plot_files(tmp_path: Path):
    for sub in ("va", "figures"):
        (tmp_path / sub).mkdir()
    df = frames()
    table = df.rename(columns={"valence_true": "valence", "arousal_true": "arousal"})
    clips = table.groupby("clip", as_index=False)[["valence", "arousal"]].mean()
    rng = np.random.default_rng(0)
    embeddings = {"frames": table, "z": rng.normal(size=(len(df), 8)),
                  "clips": clips, "g": rng.normal(size=(len(clips), 8))}  # fmt: skip
    cfg = EvaluateConfig(embedding_plots=["pca"], trace_clips=2, seed=0)
    report = evaluate_va_variant("cached", df, embeddings, cfg, tmp_path)
    true, pred = df[["valence_true", "arousal_true"]], df[["valence_pred", "arousal_pred"]]
    assert report["ccc_mean"] == pytest.approx(
        np.mean([metrics.ccc(true.iloc[:, j], pred.iloc[:, j]) for j in range(2)]), abs=1e-6
    )
    assert report["ccc_mean"] > 0.8  # the predictions above are the truth plus small noise
    for name in (
        "va/cached_frames.csv",
        "va/cached_clips.csv",
        "figures/va_space_cached.png",
        "figures/va_traces_cached.png",
        "figures/va_embeddings_pca_cached_finetune.png",
        "figures/va_clip_embeddings_pca_cached_finetune.png",
    ):
        assert (tmp_path / name).exists(), name


def fake_finetune(folder: Path, metrics_: dict) -> Path:
    """A finetune checkpoint record with the given metrics (evaluate_va is stubbed: no weights)."""
    folder.mkdir(parents=True)
    (folder / "checkpoint.json").write_text(json.dumps({"metrics": metrics_}))
    return folder


def test_evaluate_records_the_variant_with_the_best_validation_ccc_never_test(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setattr("affectpipe.evaluate.evaluate_va", lambda *a: {})
    for variant, folds in {
        "lora": [{"val/ccc_mean": 0.61, "test/ccc_mean": 0.99}, {"val/ccc_mean": 0.61}],
        "frozen_mlp": [{"val/ccc_mean": 0.7123456789}, {"val/ccc_mean": 0.5123456789}],
        "cached": [{"val/ccc_mean": 0.9}, {"val/ccc_mean": None}],  # null: never selected
    }.items():
        for k, scores in enumerate(folds):
            fake_finetune(tmp_path / "ft" / variant / f"fold{k}", scores)
    cfg = EvaluateConfig(embedding_plots=[], trace_clips=1, seed=0)
    models = VAModels(tmp_path / "ft", None)
    result = evaluate_all(cfg, models, [], tmp_path, tmp_path, tmp_path / "m", tmp_path / "p")
    record = json.loads((tmp_path / "p" / "va" / "selection.json").read_text())
    assert record == result["va_selection"] == {
        "selected": "frozen_mlp", "criterion": "val/ccc_mean, mean over folds", "served": "fold0",
        "scores": {"lora": 0.61, "frozen_mlp": 0.612346, "cached": None},
    }  # fmt: skip


def test_of_equal_validation_scores_the_first_variant_given_wins():
    assert select_va({"frozen_mlp": 0.5, "lora": 0.5, "cached": 0.1}) == "frozen_mlp"
    with pytest.raises(ValueError, match="no VA variant has a finite val/ccc_mean"):
        select_va({"lora": None})


@pytest.mark.parametrize("meta", ['{"metrics": {}}', "{bad", '{"metrics": {"val/ccc_mean": "1"}}'])
def test_a_checkpoint_without_a_validation_score_is_an_error_naming_it(tmp_path: Path, meta):
    (tmp_path / "checkpoint.json").write_text(meta)
    with pytest.raises(InputProblem, match=r"checkpoint\.json: .*(val/ccc_mean|unreadable)"):
        validation_score(tmp_path)
