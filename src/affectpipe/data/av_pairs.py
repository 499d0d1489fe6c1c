"""The face/voice pair tables of RAVDESS and CREMA-D: validation and speaker-independent splits.

Pairs come from `data/processed/<ds>/pairs.csv` (drawn by `affectpipe.data.pairs`): the face of
`face_clip` with the voice of `voice_clip`, congruent (one clip's own face and voice) or
incongruent (`easy`: any other actor, `hard`: same actor and statement), each labelled with
both clips' emotions. A split never shares an actor with another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affectpipe.data.labels import CREMAD_CLASSES, RAVDESS_CLASSES
from affectpipe.data.pairs import PAIR_COLUMNS, PairConfig, make_pairs
from affectpipe.data.splits import fold_splits
from affectpipe.problems import InputProblem

KINDS: tuple[str, ...] = ("congruent", "easy", "hard")
SINGLE = "single"  # a clip with one modality only, read by that modality's model (`single_clips`)
SIDES: dict[str, tuple[str, ...]] = {"fusion": ("face", "voice"), "audio": ("voice",),
                                     "video": ("face",)}  # fmt: skip  # what each model reads
CLIP_COLUMNS = ("clip_id", "actor", "emotion", "fold", "split")
DATASET_CLASSES: dict[str, tuple[int, ...]] = {"ravdess": RAVDESS_CLASSES, "cremad": CREMAD_CLASSES}


def dataset_classes(dataset: str) -> list[int]:
    """The emotion ids a dataset has (CREMA-D has no calm and no surprised)."""
    if dataset not in DATASET_CLASSES:
        raise ValueError(f"unknown dataset '{dataset}'; valid: {sorted(DATASET_CLASSES)}")
    return list(DATASET_CLASSES[dataset])


def feature_paths(features_dir: Path, dataset: str, face: str, voice: str) -> tuple[Path, Path]:
    """The cached face and voice feature files of a dataset, by backbone name."""
    return features_dir / f"{face}_{dataset}.h5", features_dir / f"{voice}_{dataset}.h5"


def read_table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a processed CSV, naming the file and the missing columns if it is not one."""
    if not path.is_file():
        raise InputProblem(path, "file not found (run the preprocess stage first)")
    df = pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputProblem(path, f"missing column(s) {missing}; has {list(df.columns)}")
    return df


def validate_pairs(clips: pd.DataFrame, pairs: pd.DataFrame, source: Path | str) -> None:
    """Refuse a pair table that contradicts the clip manifest.

    Congruent pairs are one clip's own face and voice; incongruent pairs differ in emotion, and
    hard ones share actor and statement. Labels must be the clips' own emotions.
    """
    by_id = clips.set_index("clip_id")
    unknown = sorted((set(pairs.face_clip) | set(pairs.voice_clip)) - set(by_id.index))
    if unknown:
        raise InputProblem(source, f"{len(unknown)} clip(s) not in clips.csv, e.g. {unknown[:3]}")
    face, voice = by_id.loc[pairs.face_clip], by_id.loc[pairs.voice_clip]
    kind = pairs.kind.to_numpy()
    checks = {
        "kind is not congruent/easy/hard": ~np.isin(kind, KINDS),
        "congruent flag disagrees with kind": (pairs.congruent.to_numpy() == 1)
        != (kind == "congruent"),
        "face_emotion is not the face clip's emotion": pairs.face_emotion.to_numpy()
        != face.emotion.to_numpy(),
        "voice_emotion is not the voice clip's emotion": pairs.voice_emotion.to_numpy()
        != voice.emotion.to_numpy(),
        "a congruent pair joins two different clips": (kind == "congruent")
        & (pairs.face_clip.to_numpy() != pairs.voice_clip.to_numpy()),
        "an incongruent pair has equal emotions": (kind != "congruent")
        & (pairs.face_emotion.to_numpy() == pairs.voice_emotion.to_numpy()),
        "a hard pair joins two actors": (kind == "hard")
        & (face.actor.to_numpy() != voice.actor.to_numpy()),
    }
    if "statement" in clips.columns:
        checks["a hard pair joins two statements"] = (kind == "hard") & (
            face.statement.astype(str).to_numpy() != voice.statement.astype(str).to_numpy()
        )
    for problem, bad in checks.items():
        if bad.any():
            row = pairs[bad].iloc[0]
            raise InputProblem(
                source,
                f"{problem} ({int(bad.sum())} pair(s), e.g. {row.face_clip}+{row.voice_clip})",
            )


def split_pairs(
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    test_fold: int | None = None,
    pair_cfg: PairConfig | None = None,
    seed: int = 0,
) -> tuple[dict[str, pd.DataFrame], int]:
    """Pairs per split, speaker-independent; returns (splits, pairs dropped).

    `test_fold=None` keeps preprocessing's splits and pairs. Another fold re-splits the clips by
    actor fold; with `pair_cfg` its pairs are drawn afresh as preprocessing draws them
    (`affectpipe.data.pairs.make_pairs`, same ratio and seed), otherwise the existing pairs are
    reused and easy pairs that straddle the new split boundary are dropped (congruent and
    same-actor hard pairs never straddle it). Raises if an actor would appear in two splits.
    """
    split_of = fold_splits(clips, test_fold)
    actor_splits = pd.DataFrame({"actor": clips.actor, "split": clips.clip_id.map(split_of)})
    shared = actor_splits.groupby("actor").split.nunique()
    if (shared > 1).any():
        raise InputProblem(
            "clips.csv",
            f"actor(s) {sorted(shared[shared > 1].index)[:5]} appear in more than one split",
        )
    if test_fold is not None and pair_cfg is not None:
        pairs = make_pairs(clips.assign(split=clips.clip_id.map(split_of)), pair_cfg, seed)
    face_split = pairs.face_clip.map(split_of)
    voice_split = pairs.voice_clip.map(split_of)
    if test_fold is None and (face_split != pairs.split).any():
        raise InputProblem("pairs.csv", "a pair's split differs from its clip's split")
    same = face_split == voice_split
    out = {
        s: pairs[same & (face_split == s)].reset_index(drop=True) for s in ("train", "val", "test")
    }
    return out, int((~same).sum())


def single_clips(clips: pd.DataFrame, side: str, test_fold: int | None = None) -> pd.DataFrame:
    """Rows in the pair table's columns for the clips that hold only `side` (`face` or `voice`):
    each clip with itself, kind `SINGLE`, its own emotion on both sides, split as the fold puts
    it: what a single-modality model reads on a one-modality release, which has no pairs. Built
    when the data are loaded, never written to pairs.csv."""
    split_of = fold_splits(clips, test_fold)
    own, other = ("has_video", "has_audio") if side == "face" else ("has_audio", "has_video")
    only = clips[(clips[own] == 1) & (clips[other] != 1)].sort_values("clip_id")
    rows = [(split_of[c], c, c, SINGLE, 1, e, e) for c, e in zip(only.clip_id, only.emotion,
                                                                 strict=True)]  # fmt: skip
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)
