"""Evaluation metrics as pure functions of arrays.

Regression (valence/arousal): CCC (Lin 1989) with population (1/N) moments, Pearson's r and
RMSE, each either pooled over all frames (the AVEC/ABAW convention) or averaged over clips (a
different number: it ignores between-clip offsets). Degenerate inputs (fewer than two values,
or no variance at all) give NaN, as `audmetric.concordance_cc` does, never a silent 0 or 1.

Classification (emotion, face/voice congruence): accuracy, UAR, F1 and ROC-AUC over the
dataset's own classes, with chance and majority baselines; `av_test_metrics` flattens them for
one table of pair predictions and `fold_summary` across speaker-independent folds.

Calibration (do the probabilities mean what they say): expected calibration error over
`ECE_BINS` equal-width confidence bins, and the Brier score (binary, and multiclass: the squared
distance of the probability vector from the one-hot label, summed over classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as sk

from affectpipe.data.labels import EMOTIONS

ArrayLike = Sequence[float] | np.ndarray


CONSTANT_RTOL = 1e-9  # spread below this fraction of the magnitude: constant


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    return t, p


def _deviations(x: np.ndarray) -> np.ndarray:
    """`x - mean(x)`, exactly zero where `x` is constant up to a relative 1e-9 of its scale:
    a constant's deviations would otherwise be rounding noise that Pearson's r normalises
    into an arbitrary correlation."""
    scale = float(np.abs(x).max(initial=0.0))
    if float(np.ptp(x)) <= CONSTANT_RTOL * scale:
        return np.zeros_like(x)
    return x - x.mean()


def ccc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Concordance correlation coefficient: 2 cov / (var_t + var_p + (mean_t - mean_p)^2).

    A constant prediction gives 0 against a varying target (the formula's value, AVEC's mean
    predictor); NaN only when it is undefined (both sides the same constant, or < 2 values)."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2:
        return float("nan")
    dt, dp = _deviations(t), _deviations(p)
    num = 2.0 * np.dot(dt, dp)
    den = np.dot(dt, dt) + np.dot(dp, dp) + t.size * (t.mean() - p.mean()) ** 2
    return float(num / den) + 0.0 if den > 0 else float("nan")  # + 0.0: no negative zero


def pearson(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Pearson's r; NaN when either side is constant (up to `CONSTANT_RTOL`)."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2:
        return float("nan")
    dt, dp = _deviations(t), _deviations(p)
    den = np.sqrt(np.dot(dt, dt) * np.dot(dp, dp))
    return float(np.dot(dt, dp) / den) if den > 0 else float("nan")


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error."""
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean((t - p) ** 2)))


def per_clip_mean(metric, y_true: ArrayLike, y_pred: ArrayLike, clips: ArrayLike) -> float:
    """Mean over clips of `metric` computed within each clip; clips giving NaN are left out."""
    t, p = _pair(y_true, y_pred)
    c = np.asarray(clips).ravel()
    if c.shape != t.shape:
        raise ValueError(f"clips has {c.size} values but y_true has {t.size}")
    values = [metric(t[c == k], p[c == k]) for k in np.unique(c)]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def va_report(
    true: np.ndarray,
    pred: np.ndarray,
    clips: ArrayLike,
    dims: Sequence[str] = ("valence", "arousal"),
) -> dict[str, float]:
    """Flat VA metrics: `ccc_<dim>` (pooled), `ccc_clip_<dim>`, `pearson_<dim>`, `rmse_<dim>`,
    and `ccc_mean` (pooled CCC averaged over dims, the model-selection number).

    `true` and `pred` are (N, len(dims)) arrays of frames.
    """
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape or true.ndim != 2 or true.shape[1] != len(dims):
        raise ValueError(f"expected (N, {len(dims)}) arrays, got {true.shape} and {pred.shape}")
    out: dict[str, float] = {}
    for j, name in enumerate(dims):
        out[f"ccc_{name}"] = ccc(true[:, j], pred[:, j])
        out[f"ccc_clip_{name}"] = per_clip_mean(ccc, true[:, j], pred[:, j], clips)
        out[f"pearson_{name}"] = pearson(true[:, j], pred[:, j])
        out[f"rmse_{name}"] = rmse(true[:, j], pred[:, j])
    out["ccc_mean"] = float(np.mean([out[f"ccc_{n}"] for n in dims]))
    return out


# --- classification: emotion (multi-class) and congruence (binary) -----------------------------
# scikit-learn computes; these wrappers fix the conventions. `classes` is always explicit, so a
# dataset's absent classes (CREMA-D: calm, surprised) are neither predicted nor averaged over, a
# label outside them is an error (scikit-learn would drop it silently), and a metric that is
# undefined (no samples, one class for AUC) is NaN rather than an exception or a warning.


def _labels(y_true, y_pred, classes) -> tuple[np.ndarray, np.ndarray, list[int]]:
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
    labels = [int(c) for c in classes]
    outside = sorted(set(np.concatenate([t, p]).tolist()) - set(labels))
    if outside:
        raise ValueError(f"labels {outside} are not among the classes {labels}")
    return t, p, labels


def confusion_matrix(y_true, y_pred, classes) -> np.ndarray:
    """(C, C) counts, rows = true class, columns = predicted class, in the order of `classes`."""
    t, p, labels = _labels(y_true, y_pred, classes)
    if not t.size:
        return np.zeros((len(labels), len(labels)), dtype=np.int64)
    return sk.confusion_matrix(t, p, labels=labels)


def accuracy(y_true, y_pred) -> float:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return float(sk.accuracy_score(t, p)) if t.size else float("nan")


def per_class_f1(y_true, y_pred, classes) -> np.ndarray:
    """F1 per class (0 where a class has neither support nor predictions; NaN with no samples)."""
    t, p, labels = _labels(y_true, y_pred, classes)
    if not t.size:
        return np.full(len(labels), np.nan)
    return sk.f1_score(t, p, labels=labels, average=None, zero_division=0.0)


def macro_f1(y_true, y_pred, classes) -> float:
    return float(per_class_f1(y_true, y_pred, classes).mean())


def weighted_f1(y_true, y_pred, classes) -> float:
    """F1 averaged with each class weighted by its support in `y_true`."""
    t, p, labels = _labels(y_true, y_pred, classes)
    if not t.size:
        return float("nan")
    return float(sk.f1_score(t, p, labels=labels, average="weighted", zero_division=0.0))


def balanced_accuracy(y_true, y_pred, classes) -> float:
    """Unweighted average recall (UAR) over the classes that occur in `y_true`."""
    t, p, labels = _labels(y_true, y_pred, classes)
    if not t.size:
        return float("nan")
    present = [c for c in labels if np.any(t == c)]
    return float(sk.recall_score(t, p, labels=present, average="macro", zero_division=0.0))


def roc_auc(y_true, scores) -> float:
    """Binary ROC-AUC (ties count 1/2); NaN when `y_true` holds one class only."""
    y = np.asarray(y_true).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    return float(sk.roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


def binary_f1(y_true, y_pred) -> float:
    """F1 of the positive class (1)."""
    return float(per_class_f1(y_true, y_pred, (0, 1))[1])


# --- calibration --------------------------------------------------------------------------

ECE_BINS = 15  # equal-width bins of [0, 1] (Guo et al. 2017)


def reliability_bins(outcome, prob, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """Per equal-width bin of `prob` ([i/n, (i+1)/n), the last one closed): the count, the mean
    probability and the observed frequency of `outcome` (0/1); empty bins are left out."""
    y = np.asarray(outcome, dtype=np.float64).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"outcome has {y.size} values but prob has {p.size}")
    which = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    keep = count > 0
    mean_p = np.bincount(which, weights=p, minlength=n_bins)[keep] / count[keep]
    freq = np.bincount(which, weights=y, minlength=n_bins)[keep] / count[keep]
    return pd.DataFrame({"bin": np.flatnonzero(keep), "count": count[keep],
                         "mean_prob": mean_p, "frequency": freq})  # fmt: skip


def ece(outcome, prob, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over bins of (share of samples) * |frequency - mean
    probability| (`reliability_bins`); NaN with no samples."""
    bins = reliability_bins(outcome, prob, n_bins)
    if not len(bins):
        return float("nan")
    gap = (bins["frequency"] - bins["mean_prob"]).abs()
    return float((bins["count"] * gap).sum() / bins["count"].sum())


def top_label(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    """(whether the argmax class is right, its probability): the multiclass posterior as a
    binary forecast, for `ece` and `reliability_bins` (top-label calibration)."""
    P = np.asarray(probs, dtype=np.float64)
    return (P.argmax(1) == np.asarray(y_true)).astype(np.int64), P.max(1)


def brier(y_true, prob) -> float:
    """Mean squared difference between the probability of class 1 and the 0/1 outcome."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    return float(np.mean((p - y) ** 2)) if y.size else float("nan")


def multiclass_brier(y_true, probs) -> float:
    """Mean over samples of sum_k (p_k - [y = k])^2 (0 perfect, 2 worst)."""
    P = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    if not y.size:
        return float("nan")
    onehot = np.zeros_like(P)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(((P - onehot) ** 2).sum(1)))


def calibration_metrics(prefix: str, y_true, probs, raw_probs=None) -> dict[str, float]:
    """`<prefix>_ece`, `<prefix>_brier` of a posterior (N, C) against class ids, or of a binary
    probability (N,) against 0/1; with `raw_probs` (before calibration), also `_ece_raw` and
    `_brier_raw`."""
    out: dict[str, float] = {}
    for suffix, P in (("", probs), ("_raw", raw_probs)):
        if P is None:
            continue
        P = np.asarray(P, dtype=np.float64)
        if P.ndim == 2:
            out[f"{prefix}_ece{suffix}"] = ece(*top_label(y_true, P))
            out[f"{prefix}_brier{suffix}"] = multiclass_brier(y_true, P)
        else:
            out[f"{prefix}_ece{suffix}"] = ece(y_true, P)
            out[f"{prefix}_brier{suffix}"] = brier(y_true, P)
    return out


def emotion_metrics(y_true, y_pred, classes, names=None) -> dict[str, float]:
    """Flat emotion metrics: accuracy, uar, macro_f1, weighted_f1, f1_<class name>."""
    names = names or [str(c) for c in classes]
    out = {
        "accuracy": accuracy(y_true, y_pred),
        "uar": balanced_accuracy(y_true, y_pred, classes),
        "macro_f1": macro_f1(y_true, y_pred, classes),
        "weighted_f1": weighted_f1(y_true, y_pred, classes),
    }
    for name, f1 in zip(names, per_class_f1(y_true, y_pred, classes), strict=True):
        out[f"f1_{name}"] = float(f1)
    return out


def congruence_metrics(congruent, prob, kind, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, F1 and ROC-AUC of congruence predictions, overall and per incongruent kind.

    `kind` is "congruent", "easy" or "hard" per pair; the `easy` and `hard` figures compare that
    kind of incongruent pair against all congruent pairs, so hard negatives (same actor and
    sentence) are scored apart from easy ones. The positive class is "congruent" (1).
    """
    y = np.asarray(congruent, dtype=np.int64)
    p = np.asarray(prob, dtype=np.float64)
    k = np.asarray(kind).astype(str)
    out: dict[str, float] = {}
    for subset, keep in (
        ("", np.ones(len(y), dtype=bool)),
        ("_easy", (k == "congruent") | (k == "easy")),
        ("_hard", (k == "congruent") | (k == "hard")),
    ):
        pred = (p[keep] >= threshold).astype(np.int64)
        out[f"congruence_accuracy{subset}"] = accuracy(y[keep], pred)
        out[f"congruence_f1{subset}"] = binary_f1(y[keep], pred)
        out[f"congruence_auc{subset}"] = roc_auc(y[keep], p[keep])
    return out


def majority_baseline(y_train, y_test, classes) -> dict[str, float]:
    """Scores of always predicting the most frequent training class."""
    counts = confusion_matrix(y_train, y_train, classes).sum(1)
    majority = np.full(len(np.asarray(y_test)), int(np.asarray(classes)[np.argmax(counts)]))
    return {
        "accuracy": accuracy(y_test, majority),
        "uar": balanced_accuracy(y_test, majority, classes),
        "macro_f1": macro_f1(y_test, majority, classes),
    }


def chance_baseline(y_test, classes) -> dict[str, float]:
    """Expected scores of guessing uniformly among `classes` (F1 of the expected confusion)."""
    c = len(classes)
    prior = confusion_matrix(y_test, y_test, classes).sum(1) / max(len(np.asarray(y_test)), 1)
    # uniform guessing: precision of class k = its prevalence, recall = 1 / C
    denom = prior + 1 / c
    f1 = np.divide(2 * prior / c, denom, out=np.zeros_like(prior), where=denom > 0)
    return {
        "accuracy": 1 / c,
        "uar": 1 / c,
        "macro_f1": float(f1.mean()),
    }


# --- face/voice emotion and congruence: tables of pair predictions -----------------------------

CV_KEYS: tuple[str, ...] = (
    "accuracy",
    "uar",
    "macro_f1",
    "weighted_f1",
    "face_accuracy",
    "voice_accuracy",
    "congruence_accuracy",
    "congruence_f1",
    "congruence_auc",
    "congruence_auc_easy",
    "congruence_auc_hard",
    "congruence_threshold",
    "congruence_accuracy_raw",
    "congruence_f1_raw",
    "congruence_ece_raw",
    "congruence_ece",
    "congruence_brier_raw",
    "congruence_brier",
    "emotion_ece_raw",
    "emotion_ece",
    "emotion_brier_raw",
    "emotion_brier",
)


def av_test_metrics(df: pd.DataFrame, classes: list[int]) -> dict[str, float]:
    """Flat metrics of a `data.av_dataset.pair_frame`: fused emotion (congruent pairs),
    per-modality emotion (all pairs: `face_*`, `voice_*`), congruence (overall, `_easy`,
    `_hard`) at the frame's `congruence_threshold`, confusion cells (`cm_<true>_<pred>`) and the
    chance baseline (`chance_*`; the majority baseline needs training labels, see
    `majority_metrics`). With the model's raw probabilities beside calibrated ones
    (`raw_prob_*`, `congruence_prob_raw`), calibration before and after: `emotion_ece[_raw]`,
    `emotion_brier[_raw]` (fused posterior, congruent pairs), `congruence_ece[_raw]`,
    `congruence_brier[_raw]`, and `congruence_accuracy_raw`, `congruence_f1_raw` (the raw
    probability at 0.5)."""
    names = [EMOTIONS[c] for c in classes]
    cong = df[df.congruent == 1]
    out = emotion_metrics(cong.emotion_true, cong.emotion_pred, classes, names)
    cm = confusion_matrix(cong.emotion_true, cong.emotion_pred, classes)
    out |= {
        f"cm_{names[i]}_{names[j]}": int(cm[i, j])
        for i in range(len(classes))
        for j in range(len(classes))
    }
    for head, short in (("face_emotion", "face"), ("voice_emotion", "voice")):
        if f"{head}_pred" in df:
            out[f"{short}_accuracy"] = accuracy(df[head], df[f"{head}_pred"])
            out[f"{short}_uar"] = balanced_accuracy(df[head], df[f"{head}_pred"], classes)
    posterior = cong[[f"prob_{n}" for n in EMOTIONS]].to_numpy()
    raw_cols = [f"raw_prob_{n}" for n in EMOTIONS]
    raw = cong[raw_cols].to_numpy() if set(raw_cols) <= set(df.columns) else None
    out |= calibration_metrics("emotion", cong.emotion_true, posterior, raw)
    if "congruence_prob" in df:
        given = "congruence_threshold" in df and len(df)
        threshold = float(df.congruence_threshold.iloc[0]) if given else 0.5
        out |= congruence_metrics(df.congruent, df.congruence_prob, df.kind, threshold)
        out["congruence_threshold"] = threshold
        raw_cong = df.congruence_prob_raw if "congruence_prob_raw" in df else None
        out |= calibration_metrics("congruence", df.congruent, df.congruence_prob, raw_cong)
        if raw_cong is not None:
            at_half = congruence_metrics(df.congruent, raw_cong, df.kind, 0.5)
            out["congruence_accuracy_raw"] = at_half["congruence_accuracy"]
            out["congruence_f1_raw"] = at_half["congruence_f1"]
    chance = chance_baseline(cong.emotion_true, classes)
    out |= {f"chance_{k}": v for k, v in chance.items()}
    out["n_pairs"], out["n_congruent"] = len(df), len(cong)
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}


def majority_metrics(train: pd.DataFrame, test: pd.DataFrame, classes: list[int]) -> dict:
    """Majority-class baseline of the fused emotion: train on congruent training pairs."""
    tr, te = train[train.congruent == 1], test[test.congruent == 1]
    base = majority_baseline(tr.face_emotion, te.face_emotion, classes)
    return {f"majority_{k}": v for k, v in base.items()}


def fold_summary(per_fold: dict[int, dict], keys: Sequence[str] = CV_KEYS) -> dict:
    """Mean and (population) std across folds of the headline metrics `keys`, plus each fold's.

    A fold where a metric is undefined (None or NaN: e.g. an AUC on a fold with one class) is
    left out of that metric's mean, and `n_folds_<key>` then says over how many folds it is."""
    out: dict = {"folds": len(per_fold)}
    for key in keys:
        values = [float(m[key]) for m in per_fold.values()
                  if m.get(key) is not None and np.isfinite(m[key])]  # fmt: skip
        if values:
            out[f"{key}_mean"] = float(np.mean(values))
            out[f"{key}_std"] = float(np.std(values))
            if len(values) < len(per_fold):
                out[f"n_folds_{key}"] = len(values)
    out["per_fold"] = {
        f"fold{k}": {key: m.get(key) for key in keys if key in m} for k, m in per_fold.items()
    }
    return out
