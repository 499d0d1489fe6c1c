"""VA cross-validation: the actor folds, the summary across folds, stage 2 from scratch, and the
fold the served model comes from."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from affectpipe.data.splits import SplitConfig, assign_actor_splits
from affectpipe.data.va_clips import VAFold, fold_name, open_inputs, refold, split_clips, va_folds
from affectpipe.data.windows import ClipData
from affectpipe.evaluate import VA_CV_KEYS, _cv
from affectpipe.features.store import FeatureWriter
from affectpipe.models.checkpoint import META_FILE, load_checkpoint
from affectpipe.problems import InputProblem
from affectpipe.results import render
from affectpipe.seeding import seed_everything
from affectpipe.train import va as train_va
from affectpipe.train.va import Scratch, finetune_va, fresh_va_model, pretrain_va, train_folds
from affectpipe.va_selection import cross_fold_score, fold_checkpoints, served_checkpoint
from tests.va_configs import architecture, finetune_config, pretrain_config

KFOLD = SplitConfig(method="kfold", val_fraction=0.17, test_fraction=0.17, folds=5, fold=0,
                    seed=0)  # fmt: skip
ACTORS = [f"Actor {i:02d}" for i in range(24)]
SMALL = {"proj_hidden": 32, "embed_dim": 16, "reg_hidden": 16, "tf_layers": 1, "tf_heads": 2,
         "tf_ff": 32, "pool": "cls", "standardize": "diag"}  # fmt: skip
WINDOW = {"length": 8, "batch_size": 8, "windows_per_epoch": 16, "eval_stride": 4}


def _clips(actors: list[str], split: SplitConfig) -> list[ClipData]:
    roles = assign_actor_splits(actors, split)
    return [ClipData(a, np.zeros((2, 1), np.float32), np.zeros((2, 2), np.float32),
                     np.arange(2), roles[a], a) for a in actors]  # fmt: skip


def test_every_actor_is_tested_exactly_once_and_never_trained_on_in_its_fold():
    clips = _clips(ACTORS, KFOLD)
    tested: list[str] = []
    folds = va_folds(KFOLD)
    assert [fold_name(f) for f in folds] == [f"fold{k}" for k in range(5)]
    for fold in folds:
        refolded = refold(clips, fold, Path("store.h5"))
        roles = {c.actor: c.split for c in refolded}
        test = {a for a, r in roles.items() if r == "test"}
        val = {a for a, r in roles.items() if r == "val"}
        train = {a for a, r in roles.items() if r == "train"}
        assert test and val and train and not (test & val or test & train or val & train)
        assert test | val | train == set(ACTORS)
        tested += sorted(test)
    assert sorted(tested) == sorted(ACTORS)  # each actor in exactly one test fold


def test_a_folds_validation_actors_are_the_next_folds_test_actors():
    clips = _clips(ACTORS, KFOLD)
    by_fold = [{c.actor: c.split for c in refold(clips, f, Path("s.h5"))} for f in va_folds(KFOLD)]
    for k in range(5):
        val = {a for a, r in by_fold[k].items() if r == "val"}
        assert val == {a for a, r in by_fold[(k + 1) % 5].items() if r == "test"}


def test_fold_0_is_the_split_preprocessing_stored():
    clips = _clips(ACTORS, KFOLD)
    assert [c.split for c in refold(clips, VAFold(KFOLD, 0), Path("s.h5"))] == [
        c.split for c in clips
    ]


def test_a_store_split_another_way_is_refused_naming_the_file():
    clips = _clips(ACTORS, replace(KFOLD, seed=1))
    with pytest.raises(InputProblem, match="store.h5.*rerun preprocess"):
        refold(clips, VAFold(KFOLD, 2), Path("store.h5"))


def test_a_holdout_split_is_one_fold_and_a_fold_out_of_range_is_refused():
    holdout = replace(KFOLD, method="holdout")
    assert va_folds(holdout) == [None] and fold_name(None) == "fold0"
    with pytest.raises(ValueError):
        VAFold(KFOLD, 5)
    with pytest.raises(ValueError, match="kfold"):
        VAFold(holdout, 0)
    assert VAFold.from_record(VAFold(KFOLD, 3).record()) == VAFold(KFOLD, 3)


def test_cross_fold_summary_is_the_mean_and_population_std_of_the_folds(tmp_path):
    per_fold = {f"fold{k}": {key: v for key in VA_CV_KEYS} for k, v in enumerate([0.2, 0.4, 0.6])}
    per_fold["fold1"]["ccc_arousal"] = None  # undefined on one fold: left out of that mean
    cv = _cv(per_fold, tmp_path / "cv.json")
    assert cv["folds"] == 3
    assert cv["ccc_valence_mean"] == pytest.approx(0.4)
    assert cv["ccc_valence_std"] == pytest.approx(np.sqrt((0.2**2 + 0.2**2) / 3), abs=1e-6)
    assert cv["ccc_arousal_mean"] == pytest.approx(0.4) and cv["n_folds_ccc_arousal"] == 2
    assert cv["ccc_arousal_std"] == pytest.approx(0.2)
    saved = json.loads((tmp_path / "cv.json").read_text())
    assert saved["per_fold"]["fold2"]["ccc_clip_valence"] == 0.6


def test_readme_table_shows_each_variant_from_stage_1_and_from_scratch_as_mean_pm_std(tmp_path):
    cv = {"folds": 5, "ccc_valence_mean": 0.5, "ccc_valence_std": 0.1}
    va = {"n_folds": 5, "cached": {"test": {"ccc_valence": 0.4}, "pretrained": cv,
                                   "scratch": cv | {"ccc_valence_mean": 0.3}}}  # fmt: skip
    (tmp_path / "va.json").write_text(json.dumps({"va": va}))
    text = render(tmp_path)
    assert "| cached | stage 1 → 2 | 5 | 0.500 ± 0.100 |" in text
    assert "| cached | stage 2 only (scratch) | 5 | 0.300 ± 0.100 |" in text
    assert "| cached | 0.400 |" in text  # fold 0, the figures' fold


def _meta(folder: Path, score: float | None) -> None:
    folder.mkdir(parents=True)
    (folder / META_FILE).write_text(json.dumps({"metrics": {"val/ccc_mean": score}}))


def test_selection_scores_a_variant_by_its_mean_validation_ccc_across_folds(tmp_path):
    for k, score in enumerate([0.2, 0.5, 0.8]):
        _meta(tmp_path / "finetune" / "cached" / f"fold{k}", score)
    _meta(tmp_path / "finetune" / "cached" / "fold10", 0.5)  # numeric order, not text order
    assert list(fold_checkpoints(tmp_path / "finetune" / "cached")) == [
        "fold0", "fold1", "fold2", "fold10"
    ]  # fmt: skip
    assert cross_fold_score(tmp_path / "finetune" / "cached") == pytest.approx(0.5)
    _meta(tmp_path / "finetune" / "lora" / "fold0", None)
    assert cross_fold_score(tmp_path / "finetune" / "lora") is None
    assert served_checkpoint(tmp_path, "cached") == tmp_path / "finetune" / "cached" / "fold0"
    with pytest.raises(InputProblem, match="no fold"):
        fold_checkpoints(tmp_path / "finetune" / "probe")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """10 actors, k-fold split as preprocessing stores it (fold 0 test), features linear in VA."""
    actors = ACTORS[:10]
    roles = assign_actor_splits(actors, KFOLD)
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(2, 16))
    path = tmp_path_factory.mktemp("feat") / "clip_afewva.h5"
    attrs = {"backbone": "clip", "spec": "synthetic", "config_hash": "0", "dim": 16}
    with FeatureWriter(path, attrs) as w:
        for i, actor in enumerate(actors * 2):
            va = rng.uniform(-0.9, 0.9, size=(20, 2)).astype(np.float32)
            x = va @ mix + 0.1 * rng.normal(size=(20, 16))
            w.add(f"{i:03d}", x, frame=np.arange(20), valence=va[:, 0], arousal=va[:, 1],
                  actor=actor, split=roles[actor])  # fmt: skip
    return path


def test_split_clips_of_a_fold_are_its_actors(store):
    fold = VAFold(KFOLD, 3)
    with open_inputs(store, "cached") as reader:
        test = split_clips(reader, "test", fold)
        stored = split_clips(reader, "test")
    assert {c.actor for c in test} != {c.actor for c in stored}
    assert all(c.split == "test" for c in test)


def _pretrain():
    return pretrain_config(epochs=1, patience=0, window=WINDOW, model=SMALL,
                           contrastive={"queue_size": 32})  # fmt: skip


def test_stage_2_from_scratch_starts_from_fresh_weights_not_the_stage_1_checkpoint(
    store, tmp_path, monkeypatch
):
    fold = VAFold(KFOLD, 1)
    pretrain_va(store, "cached", _pretrain(), 0, tmp_path / "pre", None, {}, fold)
    started: dict[str, dict[str, torch.Tensor]] = {}

    def capture(model, *args, **kwargs):
        started["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
        raise StopIteration  # the weights training starts from are all this test needs

    def no_load(*args, **kwargs):
        raise AssertionError("a scratch run loaded a checkpoint")

    monkeypatch.setattr(train_va, "fit", capture)
    monkeypatch.setattr(train_va, "load_va_model", no_load)
    with pytest.raises(StopIteration):
        finetune_va(store, Scratch("cached", architecture(**SMALL)), finetune_config(), 0,
                    tmp_path / "ft", None, {}, fold)  # fmt: skip
    seed_everything(0)
    fresh = fresh_va_model(store, "cached", architecture(**SMALL), fold)[0].state_dict()
    stage1 = load_checkpoint(tmp_path / "pre")["state_dict"]
    assert started["weights"].keys() == fresh.keys()
    assert all(torch.equal(started["weights"][k], fresh[k]) for k in fresh)
    shared = [k for k in fresh if k in stage1 and "proj" in k and stage1[k].is_floating_point()]
    assert shared and any(not torch.equal(started["weights"][k], stage1[k]) for k in shared)


def test_stage_2_refuses_a_stage_1_checkpoint_of_another_fold(store, tmp_path):
    pretrain_va(store, "cached", _pretrain(), 0, tmp_path / "pre", None, {}, VAFold(KFOLD, 1))
    with pytest.raises(InputProblem, match="another fold"):
        finetune_va(store, tmp_path / "pre", finetune_config(), 0, tmp_path / "ft", None, {},
                    VAFold(KFOLD, 2))  # fmt: skip


def test_train_folds_writes_one_subfolder_per_fold(tmp_path):
    seen = []

    def one(fold, ckpt, live):
        seen.append((fold.fold, ckpt.name, live.name))
        return fold.fold

    out = train_folds(KFOLD, tmp_path / "ckpt", tmp_path / "live", one)
    assert seen == [(k, f"fold{k}", f"fold{k}") for k in range(5)]
    assert list(out) == [f"fold{k}" for k in range(5)]
