"""Actor-disjoint splits: identity must never leak from training into evaluation.

Two ways to cut the actors, one rule for roles. AFEW-VA draws its actors in a seeded order
(`SplitConfig`: a holdout by fractions, or k folds); RAVDESS and CREMA-D take contiguous blocks of
sorted actor ids, as in the literature (`FoldConfig`). Either way one fold is the test split, one
(or none: `val_fold: -1`) validation, the rest training (`role_of`). Training on another test
fold of the AV datasets (`fold_splits`) keeps the validation fold where preprocessing put it
relative to the test fold, and keeps no validation split when preprocessing had none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd

from affectpipe.config import params_section
from affectpipe.problems import InputProblem

SPLITS: tuple[str, ...] = ("train", "val", "test")
METHODS: tuple[str, ...] = ("holdout", "kfold")
NO_VAL = -1  # val_fold: no validation split


def role_of(fold: int, test_fold: int, val_fold: int) -> str:
    """'test', 'val' or 'train' for a fold; `val_fold=-1` leaves no validation split."""
    return "test" if fold == test_fold else "val" if fold == val_fold else "train"


# ------------------------------------------------------------------ AFEW-VA: seeded actor order


@params_section
class SplitConfig:
    method: Literal["holdout", "kfold"]
    val_fraction: float  # holdout
    test_fraction: float  # holdout
    folds: int  # kfold
    fold: int  # kfold: this fold is test, the next one validation
    seed: int

    def __post_init__(self) -> None:
        if self.method == "kfold" and not (self.folds >= 3 and 0 <= self.fold < self.folds):
            raise ValueError(f"kfold needs folds >= 3 and 0 <= fold < folds, got {self}")
        if self.method == "holdout" and not (
            self.val_fraction > 0
            and self.test_fraction > 0
            and self.val_fraction + self.test_fraction < 1
        ):
            raise ValueError(
                f"holdout needs val_fraction, test_fraction > 0 with sum < 1, got {self}"
            )


def assign_actor_splits(actors: Iterable[str], cfg: SplitConfig) -> dict[str, str]:
    """Map each actor to 'train', 'val' or 'test'; seeded, independent of input order."""
    unique = sorted(set(actors))
    order = np.random.default_rng(cfg.seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    n = len(shuffled)
    if cfg.method == "kfold":
        if n < cfg.folds:
            raise ValueError(f"kfold with {cfg.folds} folds needs >= {cfg.folds} actors, got {n}")
        val_fold = (cfg.fold + 1) % cfg.folds
        return {a: role_of(i % cfg.folds, cfg.fold, val_fold) for i, a in enumerate(shuffled)}
    if n < 3:
        raise ValueError(f"an actor-disjoint train/val/test split needs >= 3 actors, got {n}")
    n_test = max(1, round(cfg.test_fraction * n))
    n_val = max(1, round(cfg.val_fraction * n))
    n_test, n_val = min(n_test, n - 2), min(n_val, n - 1 - min(n_test, n - 2))
    split = {a: "test" for a in shuffled[:n_test]}
    split |= {a: "val" for a in shuffled[n_test : n_test + n_val]}
    split |= {a: "train" for a in shuffled[n_test + n_val :]}
    return split


# ------------------------------------------------------- RAVDESS, CREMA-D: contiguous actor blocks


@params_section
class FoldConfig:
    folds: int  # contiguous blocks of sorted actor ids
    test_fold: int
    val_fold: int  # -1: no validation split

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(f"folds={self.folds}: need at least 2 actor folds")
        if not 0 <= self.test_fold < self.folds:
            raise ValueError(f"test_fold={self.test_fold} not in 0..{self.folds - 1}")
        if self.val_fold != NO_VAL and not 0 <= self.val_fold < self.folds:
            raise ValueError(f"val_fold={self.val_fold} not in -1..{self.folds - 1}")
        if self.val_fold == self.test_fold:
            raise ValueError(f"val_fold and test_fold are both {self.test_fold}")


def assign_folds(actors: list[int], cfg: FoldConfig) -> dict[int, int]:
    """Actor -> fold, contiguous blocks of the sorted ids (RAVDESS 1-4, 5-8, ...)."""
    unique = sorted(set(actors))
    if len(unique) < cfg.folds:
        raise ValueError(f"{len(unique)} actors cannot fill {cfg.folds} actor-disjoint folds")
    blocks = np.array_split(np.asarray(unique), cfg.folds)
    return {int(a): f for f, block in enumerate(blocks) for a in block}


def split_of(fold: int, cfg: FoldConfig) -> str:
    return role_of(fold, cfg.test_fold, cfg.val_fold)


def _only_fold(clips: pd.DataFrame, split: str) -> int | None:
    """The one fold preprocessing gave `split` in `clips.csv`; None if the split is empty."""
    folds = sorted(int(f) for f in clips.loc[clips.split == split, "fold"].unique())
    if len(folds) > 1:
        raise InputProblem("clips.csv", f"{split} split spans folds {folds}, expected one")
    return folds[0] if folds else None


def configured_test_fold(clips: pd.DataFrame) -> int:
    """The fold preprocessing made the test split."""
    fold = _only_fold(clips, "test")
    if fold is None:
        raise InputProblem("clips.csv", "no clip in the test split")
    return fold


def fold_splits(clips: pd.DataFrame, test_fold: int | None) -> dict[str, str]:
    """clip_id -> split. None keeps preprocessing's split; fold k makes fold k the test set and
    the fold as far after it (cyclically) as preprocessing's validation fold is after its test
    fold the validation set, or none when preprocessing had no validation split."""
    if test_fold is None:
        return dict(zip(clips.clip_id, clips.split, strict=True))
    folds = sorted(int(f) for f in clips.fold.unique())
    if test_fold not in folds:
        raise ValueError(f"test fold {test_fold} not among the manifest's folds {folds}")
    val_fold = NO_VAL
    configured_val = _only_fold(clips, "val")
    if configured_val is not None:
        offset = folds.index(configured_val) - folds.index(configured_test_fold(clips))
        val_fold = folds[(folds.index(test_fold) + offset) % len(folds)]
    return {
        c: role_of(f, test_fold, val_fold) for c, f in zip(clips.clip_id, clips.fold, strict=True)
    }
