"""Post-hoc calibration of the face/voice model's probabilities, fitted on its validation fold.

The heads are trained on pairs of actors they then fit closely, so on unseen actors their
probabilities are miscalibrated: the congruence score, in particular, sits below 0.5 almost
everywhere, and a verdict at 0.5 calls nearly every pair incongruent. After training, each
fold's model is calibrated on that fold's validation pairs, which it never trained on:

- **Temperature scaling** (Guo et al. 2017) of each emotion head (`emotion`, `face_emotion`,
  `voice_emotion`): one temperature T per head, softmax(logits / T), fitted by validation NLL.
  It changes confidence, never the predicted class.
- **Platt scaling** (Platt 1999) of the congruence probability: sigmoid(a * logit(p) + b), (a, b)
  fitted by validation NLL with a > 0, so the ranking (and ROC-AUC) is unchanged.
- **A verdict threshold** on the calibrated congruence probability, chosen on the same
  validation pairs by the `train_multimodal.calibration.threshold` rule, or given as a number.

The result is a `Calibration`, stored in the checkpoint (`model.pt` and `checkpoint.json`),
read back by `calibration_from` / `load_calibration` (`congruence_threshold`: the verdict
threshold alone) and applied by `predict`, the demo and `evaluate`. It lives here rather than
in `models.load` so the VA stages, which load models but have no calibration, do not depend on it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from affectpipe.config import params_section
from affectpipe.models.checkpoint import META_FILE
from affectpipe.models.multimodal import EMOTION_HEADS
from affectpipe.problems import InputProblem

ThresholdRule = Literal["balanced_accuracy", "f1"]
THRESHOLD_RULES: tuple[str, ...] = ("balanced_accuracy", "f1")
PROB_EPS = 1e-7  # float32 sigmoid outputs saturate at 0 and 1: clip before taking the logit
MIN_PLATT_SLOPE = 1e-3  # a > 0 keeps Platt scaling monotone: calibration never reorders pairs


@params_section
class CalibrationParams:
    """The `train_multimodal.calibration` params: how each fold's model is calibrated."""

    threshold: ThresholdRule | float  # verdict threshold: a rule maximised on validation, or p
    temperature_range: list[float]  # [min, max] of the searched temperature (bounded search)

    def __post_init__(self) -> None:
        lo_hi = self.temperature_range
        if len(lo_hi) != 2 or not 0 < lo_hi[0] < 1 < lo_hi[1]:
            raise ValueError(f"temperature_range must be [min, max] with 0 < min < 1 < max, "
                             f"got {lo_hi}")  # fmt: skip
        if isinstance(self.threshold, float) and not 0 < self.threshold < 1:
            raise ValueError(f"a numeric threshold must lie in (0, 1), got {self.threshold}")


@dataclass(frozen=True)
class Calibration:
    """What calibrates one checkpoint: a temperature per emotion head, Platt's (a, b) for the
    congruence probability (None: a model without that head) and the verdict threshold."""

    temperatures: dict[str, float]
    platt: tuple[float, float] | None
    threshold: float  # calibrated congruence probability at or above which: congruent
    rule: str  # how the threshold was chosen: a `ThresholdRule`, "fixed", or "uncalibrated"
    fitted_on: dict[str, int] = field(default_factory=dict)  # validation samples per head

    @property
    def fitted(self) -> bool:
        """False for `UNCALIBRATED`: a checkpoint written before calibration existed."""
        return self.rule != "uncalibrated"

    def apply(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`outputs` (head -> probabilities, as `head_probabilities` gives) with every head this
        calibration covers rescaled; other entries (e.g. `index`) pass through."""
        out = dict(outputs)
        for head, t in self.temperatures.items():
            if head in out:
                out[head] = scale_temperature(out[head], t)
        if self.platt is not None and "congruence" in out:
            out["congruence"] = platt_scale(out["congruence"], *self.platt)
        return out

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["platt"] = list(self.platt) if self.platt is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Calibration:
        """Inverse of `to_json`; a malformed record raises `ValueError` naming what is wrong."""
        try:
            temps = {str(k): float(v) for k, v in d["temperatures"].items()}
            platt = d["platt"]
            platt = (float(platt[0]), float(platt[1])) if platt is not None else None
            cal = cls(temps, platt, float(d["threshold"]), str(d["rule"]),
                      {str(k): int(v) for k, v in d.get("fitted_on", {}).items()})  # fmt: skip
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"malformed calibration record ({type(e).__name__}: {e})") from None
        if any(not t > 0 for t in temps.values()) or not 0 < cal.threshold < 1:
            raise ValueError(f"calibration record out of range: temperatures {temps}, "
                             f"threshold {cal.threshold}")  # fmt: skip
        return cal


# A checkpoint written before calibration existed: probabilities as the model gives them, 0.5.
UNCALIBRATED = Calibration(temperatures={}, platt=None, threshold=0.5, rule="uncalibrated")


# --- the transforms -------------------------------------------------------------------------


def _log_probs(probs: np.ndarray) -> np.ndarray:
    """log p, with -inf for the classes a dataset lacks (probability exactly 0: masked)."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def scale_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from softmax(logits): the log-probabilities are the logits up to a
    per-row constant, which softmax ignores. Masked classes stay at 0."""
    return _softmax(_log_probs(probs) / temperature)


def logit(prob: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(prob, dtype=np.float64), PROB_EPS, 1 - PROB_EPS)
    return np.log(p) - np.log1p(-p)


def platt_scale(prob: np.ndarray, a: float, b: float) -> np.ndarray:
    """sigmoid(a * logit(p) + b)."""
    z = a * logit(prob) + b
    return 0.5 * (1 + np.tanh(0.5 * z))  # the sigmoid, without overflow warnings


# --- the fits -------------------------------------------------------------------------------


def fit_temperature(probs: np.ndarray, labels: np.ndarray, bounds: tuple[float, float]) -> float:
    """The temperature in `bounds` minimising the NLL of `labels` (class ids) under
    `scale_temperature(probs, T)`: a bounded 1-D search over log T (Brent's method)."""
    from scipy.optimize import minimize_scalar

    logp = _log_probs(probs)
    y = np.asarray(labels, dtype=np.int64)
    if not len(y):
        raise ValueError("no labelled samples to fit a temperature on")
    if not np.isfinite(logp[np.arange(len(y)), y]).all():
        row = int(np.flatnonzero(~np.isfinite(logp[np.arange(len(y)), y]))[0])
        raise ValueError(
            f"sample {row}'s label (class {y[row]}) has probability 0: a class the model masks "
            "(absent from the dataset), or one whose logit lies so far below the row's top that "
            "its probability underflows"
        )

    def nll(log_t: float) -> float:
        z = logp / math.exp(log_t)
        zmax = z.max(axis=1, keepdims=True)
        lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(y)), y]))

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x))


def fit_platt(prob: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) minimising the NLL of the binary `y` under sigmoid(a * logit(prob) + b), with
    a >= `MIN_PLATT_SLOPE` (L-BFGS-B, exact gradient)."""
    from scipy.optimize import minimize

    x = logit(prob)
    t = np.asarray(y, dtype=np.float64)
    if len(np.unique(t)) < 2:
        raise ValueError(f"Platt scaling needs both classes; the {len(t)} pairs hold one only")

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = w[0] * x + w[1]
        # NLL of a logistic model: log(1 + e^z) - t z, stably
        value = float(np.mean(np.logaddexp(0.0, z) - t * z))
        r = platt_scale(prob, w[0], w[1]) - t  # dNLL/dz
        return value, np.array([np.mean(r * x), np.mean(r)])

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                   bounds=[(MIN_PLATT_SLOPE, None), (None, None)])  # fmt: skip
    return float(res.x[0]), float(res.x[1])


def threshold_scores(prob: np.ndarray, y: np.ndarray, rule: ThresholdRule
                     ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(candidate thresholds, the rule's value at each) for `prob >= t` as the verdict: one
    candidate midway between each two neighbouring distinct probabilities."""
    p = np.asarray(prob, dtype=np.float64)
    t = np.asarray(y, dtype=np.int64)
    values = np.unique(p)  # ascending
    cuts = (values[:-1] + values[1:]) / 2
    if not len(cuts):
        return cuts, cuts
    # positives predicted at cut c: those with p > c; counts via a search in the sorted scores
    order = np.sort(p[t == 1]), np.sort(p[t == 0])
    tp = len(order[0]) - np.searchsorted(order[0], cuts, side="right")
    fp = len(order[1]) - np.searchsorted(order[1], cuts, side="right")
    pos, neg = len(order[0]), len(order[1])
    if rule == "balanced_accuracy":
        tpr = tp / pos if pos else np.zeros_like(cuts)
        tnr = (neg - fp) / neg if neg else np.zeros_like(cuts)
        score = (tpr + tnr) / 2
    elif rule == "f1":
        denom = 2 * tp + fp + (pos - tp)
        score = np.divide(2 * tp, denom, out=np.zeros_like(cuts), where=denom > 0)
    else:
        raise ValueError(f"unknown threshold rule '{rule}'; valid: {list(THRESHOLD_RULES)}")
    return cuts, score


def choose_threshold(prob: np.ndarray, y: np.ndarray, rule: ThresholdRule | float) -> float:
    """The verdict threshold: a number is taken as given; a rule picks the candidate of
    `threshold_scores` that maximises it (among equals, the one nearest 0.5: after Platt
    scaling 0.5 is the validation-optimal cut for accuracy). No candidate (all probabilities
    equal): 0.5."""
    if not isinstance(rule, str):
        return float(rule)
    cuts, score = threshold_scores(prob, y, rule)
    if not len(cuts):
        return 0.5
    best = np.flatnonzero(np.isclose(score, score.max(), rtol=0, atol=1e-12))
    return float(cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]])


def head_targets(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The target of each head, per pair of a `data.av_dataset.pair_frame` (negative: no
    target): the fused emotion on congruent pairs only, each modality's own emotion, and
    whether the pair is congruent."""
    return {
        "emotion": frame["emotion_true"].to_numpy(np.int64),
        "face_emotion": frame["face_emotion"].to_numpy(np.int64),
        "voice_emotion": frame["voice_emotion"].to_numpy(np.int64),
        "congruence": frame["congruent"].to_numpy(np.int64),
    }


def fit_calibration(
    outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray], params: CalibrationParams
) -> Calibration:
    """Fit every head present in `outputs` (`head_probabilities` of the validation pairs) to
    its `targets` (`head_targets`, same order).

    A baseline's `emotion` output is its modality head itself (identical probabilities): it
    takes that head's temperature, so what evaluate scores is what predict serves."""
    bounds = (params.temperature_range[0], params.temperature_range[1])
    temps, fitted = {}, {}
    for head in sorted(EMOTION_HEADS, key=lambda h: h == "emotion"):  # modality heads first
        if head not in outputs:
            continue
        alias = next((h for h in temps if np.array_equal(outputs[h], outputs[head])), None)
        if alias is not None:
            temps[head], fitted[head] = temps[alias], fitted[alias]
            continue
        keep = targets[head] >= 0
        temps[head] = fit_temperature(outputs[head][keep], targets[head][keep], bounds)
        fitted[head] = int(keep.sum())
    platt, threshold = None, 0.5
    rule = params.threshold if isinstance(params.threshold, str) else "fixed"
    if "congruence" in outputs:
        y = targets["congruence"]
        platt = fit_platt(outputs["congruence"], y)
        threshold = choose_threshold(platt_scale(outputs["congruence"], *platt), y,
                                     params.threshold)  # fmt: skip
        fitted["congruence"] = len(y)
    return Calibration(temps, platt, threshold, rule, fitted)


# --- reading it back ----------------------------------------------------------------------


def calibration_from(payload: dict[str, Any], source: Path | str) -> Calibration:
    """The calibration a face/voice checkpoint payload holds; `UNCALIBRATED` (the model's own
    probabilities, verdict at 0.5) for checkpoints written before calibration existed."""
    record = payload.get("calibration")
    if record is None:
        return UNCALIBRATED
    try:
        return Calibration.from_json(record)
    except ValueError as e:
        raise InputProblem(source, str(e)) from None


def load_calibration(ckpt_dir: Path) -> Calibration:
    """A face/voice checkpoint folder's calibration, read from its `checkpoint.json` (no torch
    load); see `calibration_from`."""
    path = Path(ckpt_dir) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputProblem(
            path, "no checkpoint here (run the training stage that writes it)"
        ) from None
    except (OSError, ValueError) as e:
        raise InputProblem(path, f"unreadable checkpoint record: {e}") from None
    if not isinstance(meta, dict):
        raise InputProblem(path, "not an affectpipe checkpoint record (expected a JSON object)")
    return calibration_from(meta, path)


def congruence_threshold(ckpt_dir: Path) -> float:
    """The verdict threshold of a fusion checkpoint: the calibrated congruence probability at
    or above which a pair is called congruent (0.5 for an uncalibrated checkpoint). Compare it
    with probabilities that went through the same checkpoint's `Calibration.apply`."""
    return load_calibration(ckpt_dir).threshold
