"""Classification metrics against scikit-learn and hand-computed cases."""

import numpy as np
import pytest
from sklearn import metrics as sk

from affectpipe import metrics

CLASSES = [0, 2, 3, 4, 5, 6]  # CREMA-D's six of the eight unified ids


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    y = rng.choice(CLASSES, size=200)
    p = np.where(rng.random(200) < 0.6, y, rng.choice(CLASSES, size=200))
    return y, p


def test_confusion_matrix_rows_are_true_classes_in_given_order():
    cm = metrics.confusion_matrix([0, 0, 3, 6], [0, 3, 3, 0], [0, 3, 6])
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_label_outside_classes_is_an_error():
    with pytest.raises(ValueError, match=r"labels \[7\] are not among the classes"):
        metrics.confusion_matrix([0, 7], [0, 0], CLASSES)


def test_emotion_metrics_match_sklearn(labels):
    y, p = labels
    m = metrics.emotion_metrics(y, p, CLASSES, names=[str(c) for c in CLASSES])
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, p))
    assert m["uar"] == pytest.approx(sk.balanced_accuracy_score(y, p))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, p, labels=CLASSES, average="macro"))
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(y, p, labels=CLASSES, average="weighted"))
    per_class = sk.f1_score(y, p, labels=CLASSES, average=None)
    for c, f1 in zip(CLASSES, per_class, strict=True):
        assert m[f"f1_{c}"] == pytest.approx(f1)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y, p, CLASSES), sk.confusion_matrix(y, p, labels=CLASSES)
    )


def test_absent_class_is_not_averaged_over():
    # calm (1) and surprised (7) do not exist in CREMA-D: a perfect predictor scores 1.0
    y = np.array(CLASSES * 3)
    assert metrics.macro_f1(y, y, CLASSES) == 1.0
    assert metrics.balanced_accuracy(y, y, CLASSES) == 1.0


@pytest.mark.parametrize(
    "scores",
    [
        [0.1, 0.4, 0.35, 0.8, 0.5, 0.5, 0.2],  # with a tie across classes
        [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.5],
    ],
)
def test_roc_auc_matches_sklearn_with_ties(scores):
    y = [0, 1, 0, 1, 1, 0, 0]
    assert metrics.roc_auc(y, scores) == pytest.approx(sk.roc_auc_score(y, scores))


def test_roc_auc_with_one_class_is_nan():
    assert np.isnan(metrics.roc_auc([1, 1, 1], [0.2, 0.3, 0.9]))


def test_congruence_metrics_split_easy_and_hard_against_congruent():
    kind = np.array(["congruent", "congruent", "easy", "easy", "hard", "hard"])
    y = (kind == "congruent").astype(int)
    prob = np.array([0.9, 0.8, 0.1, 0.2, 0.85, 0.3])  # one hard negative fooled the model
    m = metrics.congruence_metrics(y, prob, kind)
    assert m["congruence_accuracy_easy"] == 1.0 and m["congruence_auc_easy"] == 1.0
    assert m["congruence_accuracy_hard"] == pytest.approx(3 / 4)
    hard_auc = sk.roc_auc_score([1, 1, 0, 0], [0.9, 0.8, 0.85, 0.3])
    assert m["congruence_auc_hard"] == pytest.approx(hard_auc)
    assert m["congruence_accuracy"] == pytest.approx(5 / 6)
    assert m["congruence_f1"] == pytest.approx(sk.f1_score(y, prob >= 0.5))


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
