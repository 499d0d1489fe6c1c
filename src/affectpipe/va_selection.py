"""Which fine-tuned VA variant `affectpipe predict` and the demo serve by default.

`evaluate` chooses it, the variant with the highest validation CCC mean, and records the choice
with every variant's validation score in a committed file beside the VA plot data
(`plots/va/selection.json`), so the choice is reviewed and diffed with the results it came with.
Validation, never test: each score is the `val/ccc_mean` that finetune recorded in the checkpoint
for the epoch it kept (the number it selected that epoch on), averaged over the variant's folds
(`models/finetune/<variant>/fold<k>/`). One fold's model is served, fold 0 (`SERVED_FOLD`): every
run has it (a holdout split is fold 0 too), and evaluate draws the figures from it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from affectpipe.models.checkpoint import META_FILE
from affectpipe.problems import InputProblem, write_json

SELECTION_FILE = Path("va") / "selection.json"  # under evaluate's plots folder
CRITERION = "val/ccc_mean"
SERVED_FOLD = "fold0"
FOLD_PREFIX = "fold"


def fold_checkpoints(variant_dir: Path) -> dict[str, Path]:
    """A variant's `fold<k>/` checkpoint folders by name, in fold order; none is an
    `InputProblem`."""
    found = [d for d in variant_dir.glob(f"{FOLD_PREFIX}*") if d.is_dir()
             and d.name.removeprefix(FOLD_PREFIX).isdigit()]  # fmt: skip
    if not found:
        raise InputProblem(variant_dir, "no fold<k>/ checkpoint folder (run the VA stages)")
    found.sort(key=lambda d: int(d.name.removeprefix(FOLD_PREFIX)))
    return {d.name: d for d in found}


def served_checkpoint(models_dir: Path, variant: str) -> Path:
    """The checkpoint `predict` serves for `variant`: its fold-0 model."""
    return models_dir / "finetune" / variant / SERVED_FOLD


def cross_fold_score(variant_dir: Path) -> float | None:
    """Mean validation score over a variant's folds; `None` if any fold's is not finite."""
    scores = [validation_score(d) for d in fold_checkpoints(variant_dir).values()]
    if any(s is None for s in scores):
        return None
    return round(sum(scores) / len(scores), 6)  # type: ignore[arg-type]


def validation_score(ckpt_dir: Path) -> float | None:
    """The validation CCC mean a finetune checkpoint recorded; `None` when it is not finite
    (checkpoints record a non-finite metric as null: it cannot be selected, but is listed)."""
    meta_path = ckpt_dir / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputProblem(meta_path, f"unreadable checkpoint record ({e})") from None
    found = isinstance(meta, dict) and CRITERION in meta.get("metrics", {})
    value = meta["metrics"][CRITERION] if found else None
    if found and value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InputProblem(meta_path, f"no numeric '{CRITERION}' in 'metrics' (not a finetune "
                                      f"checkpoint?)")  # fmt: skip
    return round(float(value), 6) if math.isfinite(value) else None


def select_va(scores: dict[str, float | None]) -> str:
    """The variant with the highest score; of equal scores, the first given."""
    finite = {v: s for v, s in scores.items() if s is not None}
    if not finite:
        raise ValueError(f"no VA variant has a finite {CRITERION}: {scores}")
    return max(finite, key=finite.__getitem__)  # max keeps the first of equal scores


def write_selection(path: Path, scores: dict[str, float | None]) -> dict[str, Any]:
    """Choose among `scores` (means over folds) and write the record; returns it."""
    record = {"selected": select_va(scores), "criterion": f"{CRITERION}, mean over folds",
              "served": SERVED_FOLD, "scores": scores}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return record


def read_selection(path: Path) -> str:
    """The variant a selection record names (a missing file is `FileNotFoundError`)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise InputProblem(path, f"unreadable VA selection record ({e})") from None
    selected = record.get("selected") if isinstance(record, dict) else None
    if not isinstance(selected, str) or not selected:
        raise InputProblem(path, "VA selection record names no variant ('selected')")
    return selected
