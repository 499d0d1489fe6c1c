"""Pair tables, speaker-independent folds and feature loading for the multimodal models."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectpipe.data.av_dataset import load_av_data
from affectpipe.data.av_pairs import split_pairs, validate_pairs
from affectpipe.data.labels import CREMAD_CLASSES, EMOTIONS
from affectpipe.data.pairs import PAIR_COLUMNS, PairConfig
from affectpipe.data.splits import fold_splits
from affectpipe.features.store import FeatureWriter
from affectpipe.problems import InputProblem, ProblemLog

# `extract` params the fixture's stores match (the training stage checks them)
FIXTURE_EXTRACT = {
    kind: {"spec": "fixture", "batch_size": 8, "dtype": "auto"} for kind in ("videomae", "wav2vec2")
}


def write_fixture(
    root: Path, classes=tuple(range(8)), actors=6, folds=3, face_snr=1.0, voice_snr=0.6, seed=0,
    voice_layers: int | None = None, voice_layer: int = 1,
) -> Path:  # fmt: skip
    """A tiny dataset in the processed + features layout, whose embeddings carry the emotion.

    Each modality alone is informative, but noisy, with a per-actor offset (so identity is a
    nuisance); the two noises are independent, so fusing them helps. `voice_layers`: the voice
    store is layered, that many hidden states per clip, of which only `voice_layer` carries the
    emotion (the others: the actor offset and noise).
    """
    rng = np.random.default_rng(seed)
    proc = root / "processed"
    proc.mkdir(parents=True)
    rows = []
    for a in range(actors):
        for st in (1, 2):
            for e in classes:
                rows.append(
                    {
                        "clip_id": f"a{a}_s{st}_e{e}",
                        "dataset": "fixture",
                        "actor": f"A{a:02d}",
                        "emotion": e,
                        "emotion_name": EMOTIONS[e],
                        "statement": st,
                        "fold": a % folds,
                        "has_video": 1,
                        "has_audio": 1,
                    }
                )
    clips = pd.DataFrame(rows)
    clips["split"] = clips.fold.map({0: "test", 1: "val"}).fillna("train")
    clips.to_csv(proc / "clips.csv", index=False)
    pairs = []
    for split, group in clips.groupby("split"):
        for r in group.itertuples():
            pairs.append((split, r.clip_id, r.clip_id, "congruent", 1, r.emotion, r.emotion))
            hard = group[
                (group.actor == r.actor)
                & (group.statement == r.statement)
                & (group.emotion != r.emotion)
            ]
            h = hard.iloc[rng.integers(len(hard))]
            pairs.append((split, r.clip_id, h.clip_id, "hard", 0, r.emotion, h.emotion))
            easy = group[(group.actor != r.actor) & (group.emotion != r.emotion)]
            x = easy.iloc[rng.integers(len(easy))]
            pairs.append((split, r.clip_id, x.clip_id, "easy", 0, r.emotion, x.emotion))
    pd.DataFrame(pairs, columns=PAIR_COLUMNS).to_csv(proc / "pairs.csv", index=False)
    feats = root / "features"
    for name, dim, snr in (("videomae", 32, face_snr), ("wav2vec2", 24, voice_snr)):
        proto = rng.normal(size=(8, dim))
        actor_off = rng.normal(scale=0.5, size=(actors, dim))
        attrs = {"backbone": name, "spec": "fixture", "config_hash": "0", "dataset": "ravdess",
                 "source_settings": "{}"}  # fmt: skip  # as extract records (no report.json)
        if name == "wav2vec2" and voice_layers:
            attrs["layers"] = voice_layers
        with FeatureWriter(feats / f"{name}_fixture.h5", attrs) as w:
            for r in clips.itertuples():
                x = snr * proto[r.emotion] + actor_off[int(r.actor[1:])] + rng.normal(size=dim)
                if name == "wav2vec2" and voice_layers:
                    rows = actor_off[int(r.actor[1:])] + rng.normal(size=(voice_layers, dim))
                    rows[voice_layer] = x
                    x = rows.reshape(-1)
                w.add(r.clip_id, x[None].astype(np.float32), emotion=r.emotion, actor=r.actor)
    return root


@pytest.fixture
def fixture_dir(tmp_path):
    return write_fixture(tmp_path)


def tables(root):
    return (pd.read_csv(root / "processed/clips.csv"), pd.read_csv(root / "processed/pairs.csv"))


@pytest.mark.parametrize("test_fold", [None, 0, 1, 2])
def test_no_actor_of_the_test_fold_appears_in_training(fixture_dir, test_fold):
    clips, pairs = tables(fixture_dir)
    splits, _ = split_pairs(clips, pairs, test_fold)
    actor = dict(zip(clips.clip_id, clips.actor, strict=True))

    def actors(df):
        return {actor[c] for c in pd.concat([df.face_clip, df.voice_clip])}

    assert actors(splits["test"]) and actors(splits["train"])
    assert not actors(splits["test"]) & actors(splits["train"])
    assert not actors(splits["val"]) & (actors(splits["train"]) | actors(splits["test"]))
    fold = 0 if test_fold is None else test_fold
    assert actors(splits["test"]) == set(clips.actor[clips.fold == fold])


def test_every_fold_is_test_exactly_once_and_validation_is_the_next(fixture_dir):
    clips, _ = tables(fixture_dir)
    for k in range(3):
        split = fold_splits(clips, k)
        assert {clips.fold[i] for i, c in enumerate(clips.clip_id) if split[c] == "test"} == {k}
        assert {clips.fold[i] for i, c in enumerate(clips.clip_id) if split[c] == "val"} == {
            (k + 1) % 3
        }


def test_other_folds_keep_all_congruent_and_hard_pairs(tmp_path):
    clips, pairs = tables(write_fixture(tmp_path, actors=8, folds=4))
    splits, dropped = split_pairs(clips, pairs, 2)
    kept = pd.concat(splits.values())
    for kind in ("congruent", "hard"):
        assert (kept.kind == kind).sum() == (pairs.kind == kind).sum()
    assert dropped == len(pairs) - len(kept) and dropped > 0  # straddling easy pairs


def test_other_folds_redraw_pairs_like_preprocessing(tmp_path):
    clips, pairs = tables(write_fixture(tmp_path, actors=8, folds=4))
    splits, dropped = split_pairs(
        clips, pairs, 2, PairConfig(incongruent_ratio=1.0, hard_fraction=0.5), seed=0
    )
    assert dropped == 0
    for split, df in splits.items():
        n = (df.kind == "congruent").sum()
        assert n > 0 and (df.kind == "hard").sum() == n // 2 == (df.kind == "easy").sum(), split
        validate_pairs(clips, df, "redrawn")


def test_hard_pairs_are_incongruent_and_share_actor_and_statement(fixture_dir):
    clips, pairs = tables(fixture_dir)
    validate_pairs(clips, pairs, "pairs.csv")  # the manifest passes the checks
    by_id = clips.set_index("clip_id")
    hard = pairs[pairs.kind == "hard"]
    assert len(hard) and (hard.congruent == 0).all()
    f, v = by_id.loc[hard.face_clip], by_id.loc[hard.voice_clip]
    assert (f.actor.to_numpy() == v.actor.to_numpy()).all()
    assert (f.statement.to_numpy() == v.statement.to_numpy()).all()
    assert (f.emotion.to_numpy() != v.emotion.to_numpy()).all()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            lambda p, c: p.assign(congruent=np.where(p.kind == "hard", 1, p.congruent)),
            "congruent flag disagrees with kind",
        ),
        (
            lambda p, c: p.assign(
                voice_clip=np.where(
                    p.kind == "hard", c.clip_id[c.actor != c.actor[0]].iloc[0], p.voice_clip
                )
            ),
            "a hard pair joins two actors|voice_emotion is not",
        ),
        (lambda p, c: p.assign(kind=p.kind.replace("easy", "medium")), "kind is not congruent"),
        (
            lambda p, c: p.assign(face_clip=p.face_clip.replace("a0_s1_e0", "nope")),
            r"1 clip\(s\) not in clips.csv",
        ),
    ],
)
def test_inconsistent_pair_tables_are_refused(fixture_dir, corrupt, message):
    clips, pairs = tables(fixture_dir)
    with pytest.raises(InputProblem, match=message):
        validate_pairs(clips, corrupt(pairs, clips), "pairs.csv")


def test_leaking_manifest_is_refused(fixture_dir):
    clips, pairs = tables(fixture_dir)
    clips.loc[0, "split"] = "train"  # one test-fold clip of actor A00 moved to training
    with pytest.raises(InputProblem, match=r"actor\(s\) \['A00'\] appear in more than one"):
        split_pairs(clips, pairs)


def test_unknown_fold_is_refused(fixture_dir):
    clips, _ = tables(fixture_dir)
    with pytest.raises(ValueError, match=r"test fold 7 not among the manifest's folds \[0, 1, 2\]"):
        fold_splits(clips, 7)


def test_load_av_data_pools_features_and_records_missing_clips(tmp_path):
    root = write_fixture(tmp_path, classes=CREMAD_CLASSES)
    data = load_av_data(
        root / "processed",
        root / "features/videomae_fixture.h5",
        root / "features/wav2vec2_fixture.h5",
        list(CREMAD_CLASSES),
        ProblemLog(),
        by_speaker=False,
        modality="fusion",
    )
    assert data.dims == (32, 24) and data.test_fold == 0 and data.voice_layers is None
    assert sum(len(d) for d in data.splits.values()) == len(
        pd.read_csv(root / "processed/pairs.csv")
    )
    assert data.provenance["face_features"]["backbone"] == "videomae"
    with pytest.raises(InputProblem, match=r"emotion ids \[1, 7\] are not among"):
        load_av_data(
            write_fixture(tmp_path / "b") / "processed",
            tmp_path / "b/features/videomae_fixture.h5",
            tmp_path / "b/features/wav2vec2_fixture.h5",
            list(CREMAD_CLASSES),
            ProblemLog(),
            by_speaker=False,
            modality="fusion",
        )


def speaker_store(path: Path, offsets: dict, labels: dict | None = None) -> dict:
    """A store of 3 clips per speaker, each speaker's features `offset + k`: returns them."""
    vectors = {}
    with FeatureWriter(path, {"backbone": "x"}) as w:
        for speaker, offset in offsets.items():
            for k in range(3):
                clip = f"{speaker}_{k}"
                vectors[clip] = np.asarray(offset, np.float32) + np.float32([k, 2 * k])
                emotion = (labels or {}).get(clip, k)
                w.add(clip, vectors[clip][None], emotion=emotion, actor=speaker)
    return vectors


def test_speaker_normalisation_uses_each_speakers_own_clips_and_no_label(tmp_path):
    from affectpipe.data.av_dataset import load_clip_embeddings

    base = speaker_store(tmp_path / "a.h5", {"A": [0, 0], "B": [10, -5]})
    asked = {"A_0", "A_2", "B_1"}  # statistics cover every clip of a speaker, not those asked
    got = load_clip_embeddings(tmp_path / "a.h5", asked, ProblemLog(), speaker_norm=True)
    a = np.stack([base[f"A_{k}"] for k in range(3)])
    np.testing.assert_allclose(got["A_2"], (base["A_2"] - a.mean(0)) / a.std(0), rtol=1e-6)
    np.testing.assert_allclose(got["B_1"], [0, 0], atol=1e-6)  # B's own mean, not A's
    # another speaker's features, or any label, change nothing for A
    speaker_store(tmp_path / "b.h5", {"A": [0, 0], "B": [100, 50]},
                  labels={"A_0": 7, "A_1": 7, "A_2": 7})  # fmt: skip
    other = load_clip_embeddings(tmp_path / "b.h5", asked, ProblemLog(), speaker_norm=True)
    np.testing.assert_array_equal(other["A_0"], got["A_0"])
    np.testing.assert_array_equal(other["A_2"], got["A_2"])
    # pooled statistics (what a normaliser across speakers would use) would differ
    both = np.stack(list(base.values()))
    assert not np.allclose(got["A_2"], (base["A_2"] - both.mean(0)) / both.std(0))
    raw = load_clip_embeddings(tmp_path / "a.h5", asked, ProblemLog())
    np.testing.assert_array_equal(raw["B_1"], base["B_1"])


def test_speaker_normalised_splits_each_use_their_own_speakers(tmp_path):
    root = write_fixture(tmp_path)
    args = (root / "processed", root / "features/videomae_fixture.h5",
            root / "features/wav2vec2_fixture.h5", list(range(8)), ProblemLog())  # fmt: skip
    data = load_av_data(*args, by_speaker=True, modality="fusion")
    clips = pd.read_csv(root / "processed/clips.csv")
    actor = dict(zip(clips.clip_id, clips.actor, strict=True))
    for split, ds in data.splits.items():  # every speaker's own clips: mean 0, std 1
        congruent = ds.pairs.congruent.to_numpy() == 1
        speakers = np.array([actor[c] for c in ds.pairs.face_clip])[congruent]
        for s in set(speakers):
            face = ds.face.numpy()[congruent][speakers == s]
            np.testing.assert_allclose(face.mean(0), 0, atol=1e-5, err_msg=split)
            np.testing.assert_allclose(face.std(0), 1, atol=1e-4, err_msg=split)
    # the fallback for an unknown speaker: the raw training clips' statistics
    raw = load_av_data(*args, by_speaker=False, modality="fusion")
    train = raw.splits["train"]
    own = train.congruent.numpy() > 0
    mean, std = data.global_stats[0]
    np.testing.assert_allclose(mean, train.face.numpy()[own].mean(0), atol=1e-5)
    np.testing.assert_allclose(std, train.face.numpy()[own].std(0), atol=1e-5)
    assert raw.global_stats == (None, None)


def test_a_layered_voice_store_loads_as_layers_and_records_their_count(tmp_path):
    from affectpipe.features.store import StaleCacheError

    root = write_fixture(tmp_path, voice_layers=4)
    paths = (root / "features/videomae_fixture.h5", root / "features/wav2vec2_fixture.h5")
    data = load_av_data(root / "processed", *paths, list(range(8)), ProblemLog(),
                        by_speaker=False, modality="fusion")  # fmt: skip
    assert data.voice_layers == 4 and data.splits["train"].voice.shape[1:] == (4, 24)
    assert data.dims == (32, 24) and data.provenance["voice_features"]["layers"] == 4
    expect = {"voice_features": {**data.provenance["voice_features"], "layers": 13}}
    with pytest.raises(StaleCacheError, match=r"'layers' is 4, expected 13"):
        load_av_data(root / "processed", *paths, list(range(8)), ProblemLog(), expect=expect,
                     by_speaker=False, modality="fusion")  # fmt: skip


def test_on_a_one_modality_release_the_single_modality_model_reads_every_clip(tmp_path):
    root = write_fixture(tmp_path)
    clips = pd.read_csv(root / "processed/clips.csv")
    clips["has_video"] = 0  # an audio-only release: no faces, so no pairs
    clips.to_csv(root / "processed/clips.csv", index=False)
    pairs = pd.read_csv(root / "processed/pairs.csv")
    pairs[:0].to_csv(root / "processed/pairs.csv", index=False)
    paths = (root / "features/videomae_fixture.h5", root / "features/wav2vec2_fixture.h5")
    log = ProblemLog()
    audio = load_av_data(root / "processed", *paths, list(range(8)), log, by_speaker=False,
                         modality="audio")  # fmt: skip
    for split in ("train", "val", "test"):
        rows = audio.splits[split].pairs
        assert set(rows.kind) == {"single"} and (rows.face_clip == rows.voice_clip).all()
        assert sorted(rows.voice_clip) == sorted(clips.clip_id[clips.split == split])
    assert audio.splits["train"].face.shape[1] == 0  # the audio model reads no face
    assert log.skipped == []


def test_a_mixed_release_reads_pairs_only_as_its_one_sided_files_repeat_recordings(tmp_path):
    root = write_fixture(tmp_path)
    clips = pd.read_csv(root / "processed/clips.csv")
    clips.loc[clips.statement == 2, "has_video"] = 0  # like RAVDESS's 03 wavs beside 01 mp4s
    clips.to_csv(root / "processed/clips.csv", index=False)
    paths = (root / "features/videomae_fixture.h5", root / "features/wav2vec2_fixture.h5")
    audio = load_av_data(root / "processed", *paths, list(range(8)), ProblemLog(),
                         by_speaker=False, modality="audio")  # fmt: skip
    assert all("single" not in set(d.pairs.kind) for d in audio.splits.values())
