"""Congruence pairs: the properties the multimodal models rely on."""

from __future__ import annotations

import itertools

import pandas as pd

from affectpipe.data.pairs import PairConfig, make_pairs
from affectpipe.data.splits import FoldConfig, assign_folds, split_of


def clip_table(actors=range(1, 7), statements=(1, 2), emotions=range(8)) -> pd.DataFrame:
    rows = [
        {
            "clip_id": f"{a:02d}-{s}-{e}",
            "actor": a,
            "statement": s,
            "emotion": e,
            "has_video": 1,
            "has_audio": 1,
        }
        for a, s, e in itertools.product(actors, statements, emotions)
    ]
    clips = pd.DataFrame(rows)
    cfg = FoldConfig(folds=6, test_fold=0, val_fold=1)
    fold = assign_folds(clips.actor.tolist(), cfg)
    clips["fold"] = clips.actor.map(fold)
    clips["split"] = clips.fold.map(lambda f: split_of(f, cfg))
    return clips


def test_pair_kinds_are_balanced_per_split():
    pairs = make_pairs(clip_table(), PairConfig(incongruent_ratio=1.0, hard_fraction=0.5), seed=0)
    counts = pairs.groupby(["split", "kind"]).size().unstack()
    assert (counts.congruent == counts.easy + counts.hard).all()
    assert (counts.easy == counts.hard).all()


def test_hard_negatives_share_actor_and_statement_and_differ_in_emotion():
    clips = clip_table().set_index("clip_id")
    pairs = make_pairs(
        clips.reset_index(), PairConfig(incongruent_ratio=1.0, hard_fraction=0.5), seed=0
    )
    hard = pairs[pairs.kind == "hard"]
    face, voice = clips.loc[hard.face_clip], clips.loc[hard.voice_clip]
    assert len(hard) > 0
    assert (face.actor.values == voice.actor.values).all()
    assert (face.statement.values == voice.statement.values).all()
    assert (face.emotion.values != voice.emotion.values).all()


def test_easy_negatives_differ_in_emotion_and_are_not_hard():
    clips = clip_table().set_index("clip_id")
    pairs = make_pairs(
        clips.reset_index(), PairConfig(incongruent_ratio=1.0, hard_fraction=0.5), seed=0
    )
    easy = pairs[pairs.kind == "easy"]
    face, voice = clips.loc[easy.face_clip], clips.loc[easy.voice_clip]
    assert (face.emotion.values != voice.emotion.values).all()
    same_take = (face.actor.values == voice.actor.values) & (
        face.statement.values == voice.statement.values
    )
    assert not same_take.any()


def test_pairs_never_cross_splits_and_labels_match_clips():
    clips = clip_table()
    pairs = make_pairs(clips, PairConfig(incongruent_ratio=1.0, hard_fraction=0.5), seed=0)
    split = dict(zip(clips.clip_id, clips.split, strict=True))
    emotion = dict(zip(clips.clip_id, clips.emotion, strict=True))
    assert (pairs.face_clip.map(split) == pairs.split).all()
    assert (pairs.voice_clip.map(split) == pairs.split).all()
    assert (pairs.voice_clip.map(emotion) == pairs.voice_emotion).all()
    assert (pairs.congruent == (pairs.kind == "congruent")).all()
    assert (
        pairs[pairs.kind == "congruent"].face_clip == pairs[pairs.kind == "congruent"].voice_clip
    ).all()


def test_pairs_are_seeded():
    clips = clip_table()
    a, b = (
        make_pairs(clips, PairConfig(incongruent_ratio=1.0, hard_fraction=0.5), seed=s)
        for s in (0, 0)
    )
    c = make_pairs(clips, PairConfig(incongruent_ratio=1.0, hard_fraction=0.5), seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_clips_without_both_modalities_are_not_paired():
    clips = clip_table()
    clips.loc[clips.clip_id.str.endswith("-0"), "has_audio"] = 0
    pairs = make_pairs(clips, PairConfig(incongruent_ratio=1.0, hard_fraction=0.5), seed=0)
    assert not (pairs.face_clip.str.endswith("-0") | pairs.voice_clip.str.endswith("-0")).any()


def test_ratio_sets_the_number_of_incongruent_pairs():
    clips = clip_table()
    pairs = make_pairs(clips, PairConfig(incongruent_ratio=2.0, hard_fraction=0.25), seed=0)
    train = pairs[pairs.split == "train"].kind.value_counts()
    assert train.easy + train.hard == 2 * train.congruent
    assert train.hard == round(0.25 * 2 * train.congruent)
