"""evaluate's perceived metrics: a small fusion model, every fold, on hand-made crowd groups."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from affectpipe.av_inference import predict_pairs
from affectpipe.calibration import congruence_threshold
from affectpipe.data.perceived import NO_VOTE, PERCEIVED_COLUMNS
from affectpipe.evaluate import evaluate_av_model
from affectpipe.perceived_eval import as_pairs, join_votes, perceived_metrics
from affectpipe.problems import ProblemLog
from affectpipe.reproducibility import flatten, metric_family
from affectpipe.results import render
from tests.test_multimodal_data import write_fixture
from tests.test_multimodal_train import PARAMS, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A fixture dataset, a fusion model per fold (3 folds, few epochs) and a perceived table:
    statement 1 clips congruent, statement 2 incongruent, the face vote of one in five tied."""
    root = write_fixture(tmp_path_factory.mktemp("fx"), actors=6, folds=3)
    for name in ("videomae", "wav2vec2"):
        (root / f"features/{name}_fixture.h5").rename(root / f"features/{name}_ravdess.h5")
    ckpt, _, _ = run(
        root, "fusion", tmp_path_factory.mktemp("m"), folds="all",
        train=PARAMS["train"] | {"epochs": 3},
    )  # fmt: skip
    clips = pd.read_csv(root / "processed/clips.csv")
    apart = clips.statement == 2
    table = pd.DataFrame(
        {
            "clip_id": clips.clip_id,
            "actor": clips.actor,
            "fold": clips.fold,
            "split": clips.split,
            "emotion": clips.emotion,
            "group": apart.map({True: "incongruent", False: "congruent"}),
            "reason": "",
            "face_vote": "",
            "face_level": "",
            "voice_vote": "",
            "voice_level": "",
            "av_vote": "",
            "av_level": "",
            "face_emotion": clips.emotion.where(clips.index % 5 != 0, NO_VOTE),
            "voice_emotion": clips.emotion.where(~apart, (clips.emotion + 1) % 8),
        },  # fmt: skip
        columns=PERCEIVED_COLUMNS,
    )
    table.to_csv(root / "processed/perceived.csv", index=False)
    return root, ckpt, table


def evaluate(root, ckpt, tmp_path):
    plots = tmp_path / "plots"
    for sub in ("av", "figures"):
        (plots / sub).mkdir(parents=True, exist_ok=True)
    result = evaluate_av_model(
        "fusion", "ravdess", ckpt, root / "features", root / "processed", plots
    )
    return result, plots


def test_perceived_metrics_per_fold_and_across_folds(trained, tmp_path):
    root, ckpt, table = trained
    result, plots = evaluate(root, ckpt, tmp_path)
    test, cv = result["test"], result["cv"]
    fold0 = table[table.fold == 0]
    predicted, prov = predict_pairs(
        ckpt, root / "features", as_pairs(fold0), ProblemLog("strict"), "perceived.csv"
    )
    assert prov["test_fold"] == 0
    expected = perceived_metrics(join_votes(predicted, fold0))
    for key, value in expected.items():
        assert test[key] == pytest.approx(value, abs=1e-6), key
    assert test["n_perceived_congruent"] == (fold0.group == "congruent").sum()
    assert test["n_face_votes"] == (fold0.face_emotion != NO_VOTE).sum()
    assert 0 <= test["congruence_auc_perceived"] <= 1
    saved = json.loads((plots / "av/fusion_ravdess_perceived.json").read_text())
    # the verdict is the calibrated probability at the threshold stored in the checkpoint
    threshold = congruence_threshold(ckpt)
    assert saved["thresholds"]["fold0"] == threshold
    rated = join_votes(predicted, fold0).query("group != 'other'")
    verdict = rated.congruence_prob >= threshold
    assert test["congruence_accuracy_perceived"] == pytest.approx(
        (verdict == (rated.group == "congruent")).mean(), abs=1e-6)  # fmt: skip
    assert set(saved["per_fold"]) == {"fold0", "fold1", "fold2"}
    aucs = [f["congruence_auc_perceived"] for f in saved["per_fold"].values()]
    assert cv["congruence_auc_perceived_mean"] == pytest.approx(sum(aucs) / 3, abs=1e-6)
    assert cv["n_perceived_incongruent"] == (table.group == "incongruent").sum()
    scored = pd.read_csv(plots / "av/fusion_ravdess_perceived.csv")
    assert set(scored.clip_id) == set(fold0.clip_id)
    names = flatten({"av": {"fusion": {"ravdess": result}}})
    assert {metric_family(n) for n in names if "perceived" in n or "_vote" in n} <= {
        "classification", "count", "spread"
    }  # fmt: skip
    (tmp_path / "m").mkdir()
    (tmp_path / "m/av.json").write_text(json.dumps({"av": {"fusion": {"ravdess": result}}}))
    rendered = render(tmp_path / "m")
    assert "Congruence on real clips as crowd raters perceived them" in rendered
    assert "| fusion / ravdess | 3 folds |" in rendered


def test_no_table_or_an_empty_one_scores_nothing(trained, tmp_path):
    root, ckpt, table = trained
    (root / "processed/perceived.csv").rename(tmp_path / "kept.csv")
    try:
        result, plots = evaluate(root, ckpt, tmp_path)
        assert not any("perceived" in k for k in result["test"])
        assert not (plots / "av/fusion_ravdess_perceived.json").exists()
        table.iloc[:0].to_csv(root / "processed/perceived.csv", index=False)
        result, plots = evaluate(root, ckpt, tmp_path)
        assert not any("perceived" in k for k in result["test"])
        skipped = json.loads((plots / "av/fusion_ravdess_perceived.json").read_text())
        assert "lists no rated clip" in skipped["skipped"]
    finally:
        (tmp_path / "kept.csv").replace(root / "processed/perceived.csv")
