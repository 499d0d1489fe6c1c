"""Actor-disjoint splits: identity must never leak from training into evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")
METHODS: tuple[str, ...] = ("holdout", "kfold")


@dataclass(frozen=True)
class SplitConfig:
    method: str = "holdout"
    val_fraction: float = 0.17
    test_fraction: float = 0.17
    folds: int = 5
    fold: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"split method '{self.method}' unknown; valid: {list(METHODS)}")
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
        fold_of = {actor: i % cfg.folds for i, actor in enumerate(shuffled)}
        val_fold = (cfg.fold + 1) % cfg.folds
        return {
            a: "test" if f == cfg.fold else "val" if f == val_fold else "train"
            for a, f in fold_of.items()
        }
    if n < 3:
        raise ValueError(f"an actor-disjoint train/val/test split needs >= 3 actors, got {n}")
    n_test = max(1, round(cfg.test_fraction * n))
    n_val = max(1, round(cfg.val_fraction * n))
    n_test, n_val = min(n_test, n - 2), min(n_val, n - 1 - min(n_test, n - 2))
    split = {a: "test" for a in shuffled[:n_test]}
    split |= {a: "val" for a in shuffled[n_test : n_test + n_val]}
    split |= {a: "train" for a in shuffled[n_test + n_val :]}
    return split
