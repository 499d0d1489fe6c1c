"""The congruence head on real face/voice disagreement, as crowd raters perceived it.

The constructed pairs of `pairs.csv` join one clip's face to another clip's voice. CREMA-D's
ratings (`data/perceived.py`, `perceived.csv`) also name real, unedited clips whose face-only
and voice-only votes differ (`incongruent`) and clips whose votes both give the acted emotion
(`congruent`). Here each such clip's own face and voice go through a model once, on the test
fold of each checkpoint (the configured one and, when training ran every fold, `fold<k>/`):
- congruence AUC, accuracy and F1 (positive: congruent) at the checkpoint's threshold;
- the face and voice heads against the face-only and voice-only majority vote, on every rated
  clip whose vote is one emotion, beside the same heads against the acted emotion.
Models without a congruence head are not scored here; a dataset without `perceived.csv`
(RAVDESS) neither; an empty one (no ratings table at download) is a recorded skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affectpipe import metrics
from affectpipe.av_inference import predict_pairs
from affectpipe.data.av_pairs import read_table
from affectpipe.data.pairs import PAIR_COLUMNS
from affectpipe.data.perceived import NO_VOTE, PERCEIVED_COLUMNS
from affectpipe.problems import ProblemLog, write_json

TABLE = "perceived.csv"
MODALITIES = ("face", "voice")
KEYS: tuple[str, ...] = (  # cross-validated as mean and std; the n_ counts are summed
    "congruence_auc_perceived",
    "congruence_accuracy_perceived",
    "congruence_f1_perceived",
    *(f"{m}_accuracy_{t}" for m in MODALITIES for t in ("vote", "acted")),
)
COUNTS: tuple[str, ...] = (
    "n_perceived_congruent",
    "n_perceived_incongruent",
    *(f"n_{m}_votes" for m in MODALITIES),
)


def as_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """Each rated clip as its own face+voice pair (`PAIR_COLUMNS`): `kind` is its perceived
    group, the emotion targets the acted emotion (the votes are joined back after inference)."""
    return pd.DataFrame(
        {
            "split": table.split,
            "face_clip": table.clip_id,
            "voice_clip": table.clip_id,
            "kind": table.group,
            "congruent": (table.group == "congruent").astype(int),
            "face_emotion": table.emotion,
            "voice_emotion": table.emotion,
        },
        columns=PAIR_COLUMNS,
    )


def join_votes(predicted: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Predictions (`pair_frame`) with each clip's perceived group and single votes."""
    votes = table.set_index("clip_id")
    out = predicted.rename(columns={"face_clip": "clip_id"}).drop(columns=["voice_clip"])
    out["group"] = out.clip_id.map(votes.group)
    out["emotion"] = out.clip_id.map(votes.emotion).astype(int)  # the acted emotion
    for m in MODALITIES:
        out[f"{m}_vote"] = out.clip_id.map(votes[f"{m}_emotion"]).astype(int)
    return out


def perceived_metrics(frame: pd.DataFrame) -> dict[str, Any]:
    """Flat metrics of one fold's `join_votes` table (see the module docstring): the verdict is
    the table's own `congruence_pred`, at the checkpoint's calibrated threshold."""
    grouped = frame[frame.group.isin(["congruent", "incongruent"])]
    y = (grouped.group == "congruent").to_numpy(dtype=np.int64)
    out: dict[str, Any] = {
        "n_perceived_congruent": int(y.sum()),
        "n_perceived_incongruent": int(len(y) - y.sum()),
    }
    if "congruence_prob" in frame:
        prob = grouped.congruence_prob.to_numpy(dtype=np.float64)
        pred = grouped.congruence_pred.to_numpy(dtype=np.int64)
        out["congruence_auc_perceived"] = metrics.roc_auc(y, prob)
        out["congruence_accuracy_perceived"] = metrics.accuracy(y, pred)
        out["congruence_f1_perceived"] = metrics.binary_f1(y, pred) if len(y) else float("nan")
    for m in MODALITIES:
        if f"{m}_emotion_pred" not in frame:
            continue
        voted = frame[frame[f"{m}_vote"] != NO_VOTE]
        out[f"n_{m}_votes"] = len(voted)
        out[f"{m}_accuracy_vote"] = metrics.accuracy(voted[f"{m}_vote"], voted[f"{m}_emotion_pred"])
        out[f"{m}_accuracy_acted"] = metrics.accuracy(voted.emotion, voted[f"{m}_emotion_pred"])
    return out


def _fold_frame(
    ckpt_dir: Path, table: pd.DataFrame, features_dir: Path, log: ProblemLog, source: str
) -> tuple[int, pd.DataFrame]:
    """(test fold, predictions joined to votes) of one checkpoint on its test fold's clips (the
    checkpoint names its fold, so every rated clip goes through it and the rest is dropped)."""
    predicted, prov = predict_pairs(ckpt_dir, features_dir, as_pairs(table), log, source)
    fold = int(prov["test_fold"])
    frame = join_votes(predicted, table)
    return fold, frame[frame.clip_id.map(table.set_index("clip_id").fold) == fold]


def evaluate_perceived(
    ckpt_dir: Path, features_dir: Path, processed_dir: Path, out_json: Path, out_csv: Path,
) -> dict[str, Any] | None:  # fmt: skip
    """{"test": ..., "cv": ...} perceived metrics of a model with a congruence head, or None when
    there is nothing to score: no `perceived.csv`, an empty one (the skip is recorded in
    `out_json`), or a model without a congruence head.

    Writes `out_json` (each fold's figures, or the reason for a skip) and `out_csv` (the test
    fold's clips with their votes and predictions).
    """
    path = processed_dir / TABLE
    if not path.is_file():
        return None
    table = read_table(path, PERCEIVED_COLUMNS)
    if table.empty:
        write_json(out_json, {"skipped": f"{path} lists no rated clip (report.json: perceived)"})
        return None
    log = ProblemLog("skip")  # a clip without features is left out and listed in `out_json`
    fold, frame = _fold_frame(ckpt_dir, table, features_dir, log, str(path))
    if "congruence_prob" not in frame or frame.empty:
        why = ("no congruence head" if "congruence_prob" not in frame
               else f"none of the test fold's rated clips in {path} has features")  # fmt: skip
        write_json(out_json, {"skipped": why, "inputs_skipped": _skips(log)})
        return None
    frame.round(6).to_csv(out_csv, index=False)
    per_fold = {fold: perceived_metrics(frame)}
    thresholds = {fold: _threshold(frame)}
    out: dict[str, Any] = {"test": per_fold[fold]}
    folders = sorted(p for p in ckpt_dir.glob("fold*") if p.is_dir())
    if folders:
        for folder in folders:
            k, f = _fold_frame(folder, table, features_dir, log, str(path))
            per_fold[k], thresholds[k] = perceived_metrics(f), _threshold(f)
        cv = metrics.fold_summary(per_fold, KEYS)
        cv |= {key: sum(m.get(key, 0) for m in per_fold.values()) for key in COUNTS}
        out["cv"] = {k: v for k, v in cv.items() if k not in ("per_fold", "folds")}
    write_json(
        out_json,
        {
            "thresholds": {f"fold{k}": t for k, t in sorted(thresholds.items())},
            "per_fold": _json(per_fold),
            "skipped": _skips(log),
        },
    )
    return out


def _threshold(frame: pd.DataFrame) -> float | None:
    """The calibrated verdict threshold the fold's predictions were made at."""
    return float(frame.congruence_threshold.iloc[0]) if len(frame) else None


def _skips(log: ProblemLog) -> list[dict[str, str]]:
    return [dict(s) for s in sorted({tuple(s.items()) for s in log.to_json()})]


def _json(per_fold: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """JSON-safe per-fold figures (NaN as null)."""
    return {
        f"fold{k}": {key: (None if isinstance(v, float) and v != v else v) for key, v in m.items()}
        for k, m in sorted(per_fold.items())
    }
