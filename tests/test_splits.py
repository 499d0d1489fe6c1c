"""Actor-disjoint splits: AFEW-VA's seeded holdout/k folds and the AV datasets' actor blocks."""

from __future__ import annotations

import pandas as pd
import pytest

from affectpipe.config import ConfigError
from affectpipe.data.splits import (
    FoldConfig,
    SplitConfig,
    assign_actor_splits,
    assign_folds,
    configured_test_fold,
    fold_splits,
    split_of,
)
from affectpipe.problems import InputProblem
from tests.data_configs import config


def split_config(**changes) -> SplitConfig:
    return config(SplitConfig, "preprocess.afewva.split", **changes)


def fold_config(**changes) -> FoldConfig:
    return config(FoldConfig, "preprocess.ravdess.folds", **changes)


def clips_table(folds: FoldConfig, actors: int = 12) -> pd.DataFrame:
    """Two clips per actor, folds and splits as preprocessing writes them to clips.csv."""
    fold_of = assign_folds(list(range(1, actors + 1)), folds)
    rows = [
        {"clip_id": f"{a:02d}-{i}", "actor": a, "fold": f, "split": split_of(f, folds)}
        for a, f in fold_of.items()
        for i in range(2)
    ]
    return pd.DataFrame(rows)


def folds_in(clips: pd.DataFrame, split: dict[str, str], role: str) -> set[int]:
    return {int(f) for c, f in zip(clips.clip_id, clips.fold, strict=True) if split[c] == role}


@pytest.mark.parametrize("method", ["holdout", "kfold"])
def test_afewva_splits_are_actor_disjoint_and_cover_everyone(method: str):
    actors = [f"actor {i}" for i in range(10)] * 3
    split = assign_actor_splits(actors, split_config(method=method, folds=5, fold=2, seed=3))
    assert set(split) == set(actors)
    assert set(split.values()) == {"train", "val", "test"}
    assert split == assign_actor_splits(
        reversed(actors), split_config(method=method, fold=2, seed=3)
    )


def test_bad_afewva_split_settings_are_named():
    with pytest.raises(ConfigError, match="method': Input should be 'holdout' or 'kfold'"):
        split_config(method="random")
    with pytest.raises(ConfigError, match="kfold needs folds >= 3"):
        split_config(method="kfold", folds=2)


def test_folds_are_contiguous_actor_blocks():
    folds = assign_folds(list(range(1, 25)), fold_config(folds=6))
    assert [a for a, f in folds.items() if f == 0] == [1, 2, 3, 4]
    assert [a for a, f in folds.items() if f == 5] == [21, 22, 23, 24]


def test_every_actor_is_in_exactly_one_split():
    clips = clips_table(fold_config())
    assert (clips.groupby("actor").split.nunique() == 1).all()
    assert set(clips.split) == {"train", "val", "test"}


def test_too_few_actors_for_the_folds_is_an_error():
    with pytest.raises(ValueError, match="3 actors cannot fill 5 actor-disjoint folds"):
        assign_folds([1, 2, 3], fold_config(folds=5))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"folds": 5, "test_fold": 5}, "test_fold=5 not in 0..4"),
        ({"folds": 5, "test_fold": 1, "val_fold": 1}, "val_fold and test_fold are both 1"),
        ({"folds": 5, "val_fold": 7}, "val_fold=7 not in -1..4"),
        ({"folds": 1}, "need at least 2"),
    ],
)
def test_bad_fold_settings_are_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        fold_config(**changes)


def test_no_validation_fold_means_no_validation_split():
    clips = clips_table(fold_config(val_fold=-1))
    assert set(clips.split) == {"train", "test"}
    for k in range(6):
        split = fold_splits(clips, k)
        assert folds_in(clips, split, "test") == {k}
        assert folds_in(clips, split, "val") == set()


@pytest.mark.parametrize(("test_fold", "val_fold"), [(0, 1), (2, 0), (5, 3)])
def test_other_test_folds_keep_the_validation_fold_where_preprocessing_put_it(test_fold, val_fold):
    clips = clips_table(fold_config(test_fold=test_fold, val_fold=val_fold))
    assert configured_test_fold(clips) == test_fold
    assert fold_splits(clips, None) == dict(zip(clips.clip_id, clips.split, strict=True))
    assert fold_splits(clips, test_fold) == fold_splits(clips, None)
    for k in range(6):
        split = fold_splits(clips, k)
        assert folds_in(clips, split, "test") == {k}
        assert folds_in(clips, split, "val") == {(k + val_fold - test_fold) % 6}


def test_a_test_split_over_two_folds_is_refused():
    clips = clips_table(fold_config())
    clips.loc[clips.fold == 3, "split"] = "test"
    with pytest.raises(InputProblem, match=r"test split spans folds \[0, 3\]"):
        configured_test_fold(clips)


def test_unknown_fold_is_refused():
    clips = clips_table(fold_config())
    with pytest.raises(ValueError, match=r"test fold 7 not among the manifest's folds"):
        fold_splits(clips, 7)
