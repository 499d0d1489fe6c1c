"""Classification metrics: the conventions around scikit-learn, on hand-computed cases."""

import numpy as np
import pytest

from affectpipe import metrics

CLASSES = [0, 2, 3, 4, 5, 6]  # CREMA-D's six of the eight unified ids


def test_confusion_matrix_rows_are_true_classes_in_given_order():
    cm = metrics.confusion_matrix([0, 0, 3, 6], [0, 3, 3, 0], [0, 3, 6])
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


@pytest.mark.parametrize(("y_true", "y_pred"), [([0, 7], [0, 0]), ([0, 0], [0, 7])])
def test_label_outside_classes_is_an_error(y_true, y_pred):
    with pytest.raises(ValueError, match=r"labels \[7\] are not among the classes"):
        metrics.macro_f1(y_true, y_pred, CLASSES)


def test_no_samples_give_nan_not_an_exception():
    assert metrics.confusion_matrix([], [], CLASSES).sum() == 0
    for metric in (metrics.macro_f1, metrics.weighted_f1, metrics.balanced_accuracy):
        assert np.isnan(metric([], [], CLASSES))
    assert np.isnan(metrics.accuracy([], []))


def test_emotion_metrics_on_a_hand_computed_case():
    # true 0 0 0 3 3 6 / pred 0 0 3 3 6 6: class 0 P=1 R=2/3, class 3 P=R=1/2, class 6 P=1/2 R=1
    y, p = [0, 0, 0, 3, 3, 6], [0, 0, 3, 3, 6, 6]
    m = metrics.emotion_metrics(y, p, [0, 3, 6], names=["neutral", "happy", "angry"])
    f1 = {"neutral": 0.8, "happy": 0.5, "angry": 2 / 3}
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["macro_f1"] == pytest.approx(np.mean(list(f1.values())))
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)
    for name, value in f1.items():
        assert m[f"f1_{name}"] == pytest.approx(value)


def test_a_class_predicted_but_never_true_lowers_f1_not_uar():
    y, p = [0, 0, 3, 3], [0, 6, 3, 3]  # 6 exists in the dataset but not in this test set
    assert metrics.balanced_accuracy(y, p, [0, 3, 6]) == pytest.approx((1 / 2 + 1) / 2)
    assert metrics.per_class_f1(y, p, [0, 3, 6]).tolist() == pytest.approx([2 / 3, 1.0, 0.0])


def test_absent_class_is_not_averaged_over():
    # calm (1) and surprised (7) do not exist in CREMA-D: a perfect predictor scores 1.0
    y = np.array(CLASSES * 3)
    assert metrics.macro_f1(y, y, CLASSES) == 1.0
    assert metrics.balanced_accuracy(y, y, CLASSES) == 1.0


def test_roc_auc_counts_a_tie_across_classes_as_half():
    # positives 0.5, 0.8 / negatives 0.1, 0.5: pairs won 1 + 0.5 + 1 + 1 out of 4
    assert metrics.roc_auc([1, 1, 0, 0], [0.5, 0.8, 0.1, 0.5]) == pytest.approx(3.5 / 4)


def test_roc_auc_with_one_class_is_nan():
    assert np.isnan(metrics.roc_auc([1, 1, 1], [0.2, 0.3, 0.9]))


def test_congruence_metrics_split_easy_and_hard_against_congruent():
    kind = np.array(["congruent", "congruent", "easy", "easy", "hard", "hard"])
    y = (kind == "congruent").astype(int)
    prob = np.array([0.9, 0.8, 0.1, 0.2, 0.85, 0.3])  # one hard negative fooled the model
    m = metrics.congruence_metrics(y, prob, kind)
    assert m["congruence_accuracy_easy"] == 1.0 and m["congruence_auc_easy"] == 1.0
    assert m["congruence_accuracy_hard"] == pytest.approx(3 / 4)
    # hard: congruent 0.9 and 0.8 against 0.85 and 0.3; 0.9 beats both, 0.8 only 0.3
    assert m["congruence_auc_hard"] == pytest.approx(3 / 4)
    assert m["congruence_accuracy"] == pytest.approx(5 / 6)
    assert m["congruence_f1"] == pytest.approx(0.8)  # TP 2, FP 1 (the fooled hard pair), FN 0


def test_majority_and_chance_baselines():
    train = [4, 4, 4, 0, 3]
    test = [4, 0, 3, 3]
    base = metrics.majority_baseline(train, test, [0, 3, 4])
    assert base["accuracy"] == pytest.approx(0.25)
    assert base["uar"] == pytest.approx(1 / 3)
    chance = metrics.chance_baseline(test, [0, 3, 4])
    assert chance["accuracy"] == pytest.approx(1 / 3) and chance["uar"] == pytest.approx(1 / 3)
    rng = np.random.default_rng(0)  # the expected macro-F1 of uniform guessing, by simulation
    sims = [
        metrics.macro_f1(np.repeat(test, 500), rng.choice([0, 3, 4], 2000), [0, 3, 4])
        for _ in range(20)
    ]
    assert chance["macro_f1"] == pytest.approx(np.mean(sims), abs=0.02)


def test_fold_summary_leaves_out_folds_where_a_metric_is_undefined_and_says_so():
    per_fold = {
        0: {"accuracy": 0.5, "congruence_auc": 0.8},
        1: {"accuracy": 0.7, "congruence_auc": float("nan")},  # one class only: undefined
        2: {"accuracy": 0.6, "congruence_auc": None},
    }
    out = metrics.fold_summary(per_fold, ("accuracy", "congruence_auc"))
    assert out["folds"] == 3 and out["accuracy_mean"] == pytest.approx(0.6)
    assert "n_folds_accuracy" not in out
    assert out["congruence_auc_mean"] == 0.8 and out["congruence_auc_std"] == 0.0
    assert out["n_folds_congruence_auc"] == 1
