"""Calibration of the face/voice model: temperature and Platt scaling, the verdict threshold,
the calibration metrics and the record stored in a checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from affectpipe import metrics
from affectpipe.calibration import (
    UNCALIBRATED,
    Calibration,
    CalibrationParams,
    choose_threshold,
    congruence_threshold,
    fit_calibration,
    fit_platt,
    fit_temperature,
    load_calibration,
    platt_scale,
    scale_temperature,
    threshold_scores,
)
from affectpipe.config import ConfigError, from_section
from affectpipe.data.labels import EMOTIONS
from affectpipe.models.checkpoint import add_to_checkpoint, load_checkpoint, save_checkpoint
from affectpipe.problems import InputProblem
from affectpipe.reproducibility import TOLERANCES, metric_family

BOUNDS = (0.05, 20.0)
PARAMS = CalibrationParams(threshold="balanced_accuracy", temperature_range=list(BOUNDS))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def overconfident(n: int = 4000, classes: int = 6, true_t: float = 3.0, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / true_t): the model's own softmax
    (temperature 1) is overconfident by a known factor."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 4.0, size=(n, classes))
    p_true = softmax(logits / true_t)
    labels = np.array([rng.choice(classes, p=row) for row in p_true])
    return softmax(logits), labels


def binary(n: int = 20000, a: float = 0.4, b: float = -1.0, seed: int = 1):
    """Scores whose outcomes follow sigmoid(a * logit(score) + b)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3.0, size=n)
    prob = 1 / (1 + np.exp(-z))
    y = (rng.random(n) < 1 / (1 + np.exp(-(a * z + b)))).astype(int)
    return prob, y


def test_temperature_recovers_the_overconfidence_factor():
    probs, labels = overconfident(true_t=3.0)
    assert fit_temperature(probs, labels, BOUNDS) == pytest.approx(3.0, rel=0.1)


def test_temperature_scaling_keeps_the_argmax_and_the_masked_classes():
    probs, _ = overconfident(n=50)
    probs[:, 2] = 0.0  # a class the dataset lacks
    probs /= probs.sum(1, keepdims=True)
    scaled = scale_temperature(probs, 2.5)
    assert (scaled.argmax(1) == probs.argmax(1)).all()
    assert (scaled[:, 2] == 0).all() and np.allclose(scaled.sum(1), 1)
    assert np.allclose(scale_temperature(probs, 1.0), probs)


def test_calibration_lowers_ece_of_an_overconfident_model():
    probs, labels = overconfident(seed=0)
    test_probs, test_labels = overconfident(seed=1)
    t = fit_temperature(probs, labels, BOUNDS)
    before = metrics.ece(*metrics.top_label(test_labels, test_probs))
    after = metrics.ece(*metrics.top_label(test_labels, scale_temperature(test_probs, t)))
    assert before > 0.15 and after < before / 3, (before, after)
    assert metrics.multiclass_brier(test_labels, scale_temperature(test_probs, t)) < (
        metrics.multiclass_brier(test_labels, test_probs)
    )


def test_platt_recovers_known_slope_and_bias():
    prob, y = binary(a=0.4, b=-1.0)
    a, b = fit_platt(prob, y)
    assert a == pytest.approx(0.4, abs=0.05) and b == pytest.approx(-1.0, abs=0.1)


def test_platt_never_reverses_the_ranking():
    prob, y = binary(n=2000, a=1.0, b=0.0)
    a, _ = fit_platt(prob, 1 - y)  # a model that is anti-correlated on this fold
    assert a > 0
    assert metrics.roc_auc(y, platt_scale(prob, a, 0.3)) == pytest.approx(metrics.roc_auc(y, prob))


def test_platt_lowers_ece_of_a_shifted_congruence_score():
    """The failure calibration exists for: a score below 0.5 almost everywhere."""
    prob, y = binary(a=1.0, b=2.5, seed=2)
    held_out, y2 = binary(a=1.0, b=2.5, seed=3)
    a, b = fit_platt(prob, y)
    assert metrics.ece(y2, platt_scale(held_out, a, b)) < metrics.ece(y2, held_out) / 3


def test_balanced_accuracy_threshold_maximises_it_on_the_given_pairs():
    prob = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6])
    y = np.array([0, 0, 0, 1, 1, 1])
    t = choose_threshold(prob, y, "balanced_accuracy")
    assert 0.3 < t < 0.35  # every pair right; 0.5 would miss two congruent ones
    cuts, score = threshold_scores(prob, y, "balanced_accuracy")
    pred = (prob[None, :] >= cuts[:, None]).astype(int)
    brute = [metrics.balanced_accuracy(y, p, (0, 1)) for p in pred]
    assert np.allclose(score, brute)


def test_f1_threshold_differs_from_balanced_accuracy_when_positives_dominate():
    prob = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    y = np.array([1, 0, 1, 0, 1, 1, 1, 1])
    cuts, score = threshold_scores(prob, y, "f1")
    pred = (prob[None, :] >= cuts[:, None]).astype(int)
    assert np.allclose(score, [metrics.binary_f1(y, p) for p in pred])
    assert choose_threshold(prob, y, "f1") < choose_threshold(prob, y, "balanced_accuracy")


def test_a_numeric_threshold_is_taken_as_given_and_ties_go_nearest_half():
    assert choose_threshold(np.array([0.2, 0.9]), np.array([0, 1]), 0.7) == 0.7
    # separable everywhere between 0.2 and 0.9: the cut between them (0.55) wins
    assert choose_threshold(np.array([0.1, 0.2, 0.9, 0.95]), np.array([0, 0, 1, 1]),
                            "balanced_accuracy") == pytest.approx(0.55)  # fmt: skip
    assert choose_threshold(np.array([0.3, 0.3]), np.array([0, 1]), "f1") == 0.5


def test_fit_calibration_fits_every_head_present_and_the_threshold_on_calibrated_scores():
    probs, labels = overconfident(n=600, classes=8)
    prob, y = binary(n=600, a=1.0, b=2.0)
    fused = overconfident(n=600, classes=8, true_t=2.0, seed=5)[0]
    outputs = {"emotion": fused, "face_emotion": probs, "congruence": prob,
               "index": np.arange(600)}  # fmt: skip
    emotion = np.where(y == 1, labels, -100)  # the fused target: congruent pairs only
    targets = {"emotion": emotion, "face_emotion": labels, "voice_emotion": labels,
               "congruence": y}  # fmt: skip
    cal = fit_calibration(outputs, targets, PARAMS)
    assert set(cal.temperatures) == {"emotion", "face_emotion"}
    assert cal.fitted_on == {"emotion": int(y.sum()), "face_emotion": 600, "congruence": 600}
    assert cal.threshold == choose_threshold(platt_scale(prob, *cal.platt), y, "balanced_accuracy")
    applied = cal.apply(outputs)
    assert np.allclose(applied["congruence"], platt_scale(prob, *cal.platt))
    assert (applied["index"] == outputs["index"]).all()
    # a baseline's emotion output is its modality head: one temperature, fitted on that head's
    # own targets (every pair), so evaluate scores what predict serves
    audio = fit_calibration({"emotion": probs, "voice_emotion": probs.copy()}, targets, PARAMS)
    assert audio.platt is None and audio.threshold == 0.5
    assert audio.temperatures["emotion"] == audio.temperatures["voice_emotion"]
    assert audio.fitted_on == {"emotion": 600, "voice_emotion": 600}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"threshold": "youden"}, "train_multimodal.calibration.threshold"),
        ({"threshold": 1.5}, "numeric threshold must lie in"),
        ({"temperature_range": [2.0, 5.0]}, "temperature_range"),
    ],
)
def test_bad_calibration_params_fail_by_name(over, message):
    with pytest.raises(ConfigError, match=message):
        from_section(CalibrationParams, asdict(PARAMS) | over, "train_multimodal.calibration")


def test_the_stored_calibration_round_trips_through_the_checkpoint(tmp_path):
    save_checkpoint(tmp_path, {}, {"k": 1}, {"dataset": "ravdess"}, 3, {"val/score": 0.5})
    assert load_calibration(tmp_path) == UNCALIBRATED  # written before calibration existed
    cal = Calibration({"emotion": 1.7}, (0.8, 1.2), 0.3125, "balanced_accuracy", {"emotion": 9})
    add_to_checkpoint(tmp_path, "calibration", cal.to_json())
    assert load_calibration(tmp_path) == cal
    assert congruence_threshold(tmp_path) == 0.3125
    payload = load_checkpoint(tmp_path)  # model.pt holds it too, and kept the rest
    assert Calibration.from_json(payload["calibration"]) == cal and payload["epoch"] == 3


def test_a_damaged_calibration_record_names_the_file(tmp_path):
    save_checkpoint(tmp_path, {}, {}, {}, 0, {})
    add_to_checkpoint(tmp_path, "calibration", {"temperatures": {}, "platt": None,
                                                "threshold": 1.5, "rule": "f1"})  # fmt: skip
    with pytest.raises(InputProblem, match="checkpoint.json: calibration record out of range"):
        load_calibration(tmp_path)


def test_ece_and_brier_on_hand_computed_cases():
    # bins of width 1/15: 0.1 and 0.12 share bin 1, 0.9 is in bin 13
    outcome, prob = np.array([0, 1, 1]), np.array([0.1, 0.12, 0.9])
    bins = metrics.reliability_bins(outcome, prob)
    assert list(bins["bin"]) == [1, 13] and list(bins["count"]) == [2, 1]
    expected = (2 * abs(0.5 - 0.11) + 1 * abs(1 - 0.9)) / 3
    assert metrics.ece(outcome, prob) == pytest.approx(expected)
    assert metrics.ece([1], [1.0]) == 0.0  # p = 1 falls in the last bin
    assert metrics.brier(outcome, prob) == pytest.approx((0.01 + 0.88**2 + 0.01) / 3)
    P = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert metrics.multiclass_brier([0, 2], P) == pytest.approx((0.25 + 0.25) / 2)


def pair_table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A `pair_frame` as `predict_av` gives it: calibrated and raw probabilities, a threshold."""
    rng = np.random.default_rng(seed)
    congruent = rng.integers(0, 2, n)
    face = rng.integers(0, 8, n)
    probs, _ = overconfident(n=n, classes=8, seed=seed)
    raw_cong = 1 / (1 + np.exp(-(rng.normal(-2, 1, n) + 1.5 * congruent)))
    cal = Calibration({"emotion": 2.0}, (1.0, 2.0), 0.45, "balanced_accuracy")
    out = cal.apply({"emotion": probs, "congruence": raw_cong})
    df = pd.DataFrame({
        "congruent": congruent,
        "kind": np.where(congruent == 1, "congruent",
                         np.where(rng.random(n) < 0.5, "easy", "hard")),
        "face_emotion": face, "voice_emotion": face,
        "emotion_true": np.where(congruent == 1, face, -100),
        "emotion_pred": probs.argmax(1),
        "congruence_prob": out["congruence"], "congruence_prob_raw": raw_cong,
        "congruence_pred": (out["congruence"] >= 0.45).astype(int), "congruence_threshold": 0.45,
    })  # fmt: skip
    for c, name in enumerate(EMOTIONS):
        df[f"prob_{name}"], df[f"raw_prob_{name}"] = out["emotion"][:, c], probs[:, c]
    return df


def test_evaluate_metrics_score_the_verdict_at_the_stored_threshold_and_calibration():
    df = pair_table()
    m = metrics.av_test_metrics(df, list(range(8)))
    y, p, raw = df.congruent, df.congruence_prob, df.congruence_prob_raw
    assert m["congruence_threshold"] == 0.45
    assert m["congruence_accuracy"] == pytest.approx(metrics.accuracy(y, p >= 0.45))
    assert m["congruence_f1"] == pytest.approx(metrics.binary_f1(y, (p >= 0.45).astype(int)))
    assert m["congruence_accuracy_raw"] == pytest.approx(metrics.accuracy(y, raw >= 0.5))
    assert m["congruence_ece_raw"] == pytest.approx(metrics.ece(y, raw))
    assert m["congruence_ece"] == pytest.approx(metrics.ece(y, p))
    assert m["congruence_brier"] == pytest.approx(metrics.brier(y, p))
    cong = df[df.congruent == 1]
    posterior = cong[[f"prob_{e}" for e in EMOTIONS]].to_numpy()
    assert m["emotion_brier"] == pytest.approx(
        metrics.multiclass_brier(cong.emotion_true, posterior)
    )
    top = metrics.top_label(cong.emotion_true, posterior)
    assert m["emotion_ece"] == pytest.approx(metrics.ece(*top))
    assert m["emotion_ece"] != m["emotion_ece_raw"]


def test_every_metric_evaluate_writes_has_a_tolerance_family():
    per_fold = {k: metrics.av_test_metrics(pair_table(seed=k), list(range(8))) for k in range(2)}
    summary = metrics.fold_summary(per_fold)
    names = [f"av.fusion.ravdess.test.{k}" for k in per_fold[0] if not k.startswith("cm_")]
    names += [f"av.fusion.ravdess.cv.{k}" for k in summary if k != "per_fold"]
    assert "av.fusion.ravdess.cv.congruence_ece_raw_mean" in names
    assert all(metric_family(n) in TOLERANCES for n in names)


def test_readme_calibration_rows_show_before_and_after(tmp_path):
    from affectpipe.results import render

    test = {"congruence_accuracy": 0.7, "congruence_accuracy_raw": 0.5, "emotion_ece": 0.1,
            "emotion_ece_raw": 0.25}  # fmt: skip
    cv = {"folds": 6, "congruence_accuracy_mean": 0.68, "congruence_accuracy_raw_mean": 0.56,
          "congruence_threshold_mean": 0.4}  # fmt: skip
    av = {"fusion": {"ravdess": {"test": test, "cv": cv}}, "audio": {"cremad": {"test": test}}}
    (tmp_path / "av.json").write_text(json.dumps({"av": av}))
    table = render(tmp_path).split("Calibration", 1)[1]
    assert "| fusion / ravdess | 6 folds | 0.560 → 0.680 | – | 0.400 |" in table
    assert "| audio / cremad | test fold | 0.500 → 0.700 |" in table and "0.250 → 0.100" in table
