"""AFEW-VA clips as the VA models read them: a feature-store file, split by split.

Inputs are CLIP frame features (`cached`, `linear_probe`) or the block cache of hidden states
entering the first LoRA block (`lora`, `frozen_mlp`; see `block_cache`). Both carry per-frame
`frame`, `valence`, `arousal` and per-clip `split`, `actor`. Their provenance travels into every
checkpoint, and a checkpoint is only ever run on inputs with the same provenance.

Cross-validation re-cuts the stored split: with a k-fold split (`preprocess.afewva.split`), fold
k's clips are those of the same seeded actor folds with fold k as the test split and the next one
validation (`VAFold`), so every actor is tested exactly once and never trained on in its fold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from affectpipe.data.splits import SPLITS, SplitConfig, assign_actor_splits
from affectpipe.data.windows import ClipData
from affectpipe.features.store import BLOCK_CONTENT, FeatureReader, open_features
from affectpipe.models.va import PIPELINES, reads_block_cache
from affectpipe.problems import InputProblem


def open_inputs(path: Path, pipeline: str) -> FeatureReader:
    """Open the feature file `pipeline` trains on, refusing the other kind of file."""
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline '{pipeline}'; valid: {list(PIPELINES)}")
    reader = open_features(path, {"backbone": "clip"})
    is_blocks = reader.attrs.get("content") == BLOCK_CONTENT
    if is_blocks != reads_block_cache(pipeline):
        reader.close()
        want = "the block cache" if reads_block_cache(pipeline) else "CLIP frame features"
        raise InputProblem(path, f"pipeline '{pipeline}' trains on {want}, not this file")
    return reader


def check_store(path: Path, expect: dict[str, Any]) -> None:
    """Refuse a VA store made otherwise than `expect` says (`features.extract.expected_attrs`
    of `extract.clip`): so a stage run by hand, outside DVC, does not train on stale features.
    The block cache records no dataset and no dtype (it holds float32 hidden states): those
    are checked on CLIP frame features only."""
    with open_features(path) as reader:
        blocks = reader.attrs.get("content") == BLOCK_CONTENT
    open_features(path, {k: v for k, v in expect.items()
                         if not (blocks and k in ("dataset", "dtype"))}).close()  # fmt: skip


def load_clips(reader: FeatureReader, splits: tuple[str, ...]) -> list[ClipData]:
    """All clips of the given splits, in clip-id order (hidden states kept as float16)."""
    clips = []
    for cid in reader.clip_ids:
        lab = reader.labels(cid)
        missing = [k for k in ("frame", "valence", "arousal", "split") if k not in lab]
        if missing:
            raise InputProblem(reader.path, f"clip {cid} lacks label(s) {missing}")
        if lab["split"] not in splits:
            continue
        x = reader[cid]
        if reader.attrs.get("content") == BLOCK_CONTENT:
            x = x.astype(np.float16)  # halves memory; the model computes in float32
        va = np.stack([lab["valence"], lab["arousal"]], 1).astype(np.float32)
        frames = np.asarray(lab["frame"], dtype=np.int64)
        clips.append(ClipData(cid, x, va, frames, lab["split"], str(lab.get("actor", ""))))
    return clips


@dataclass(frozen=True)
class VAFold:
    """One fold of preprocessing's k-fold actor split: `fold` is the test split, the next fold
    validation, the rest training."""

    split: SplitConfig
    fold: int

    def __post_init__(self) -> None:
        if self.split.method != "kfold":
            raise ValueError(f"cross-validation needs a kfold split, got {self.split.method}")
        replace(self.split, fold=self.fold)  # validates 0 <= fold < folds

    @property
    def name(self) -> str:
        return f"fold{self.fold}"

    def record(self) -> dict[str, Any]:
        """What a checkpoint records, so evaluation re-cuts the same split (`from_record`)."""
        return {"fold": self.fold, "split": asdict(self.split)}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> VAFold | None:
        return None if record is None else cls(SplitConfig(**record["split"]), record["fold"])


def va_folds(split: SplitConfig) -> list[VAFold | None]:
    """The folds a VA model is trained on: every fold of a kfold split; a holdout is one split,
    the stored one (None)."""
    if split.method != "kfold":
        return [None]
    return [VAFold(split, k) for k in range(split.folds)]


def fold_name(fold: VAFold | None) -> str:
    """The checkpoint subfolder of a fold (a holdout is fold 0: the one split there is)."""
    return fold.name if fold is not None else "fold0"


def refold(clips: list[ClipData], fold: VAFold, path: Path) -> list[ClipData]:
    """`clips` with the splits of `fold`. The stored splits must be those the same split
    config gives its configured fold: else the store was not made with these params."""
    actors = [c.actor for c in clips]
    stored = assign_actor_splits(actors, fold.split)
    if any(stored[c.actor] != c.split for c in clips):
        raise InputProblem(path, f"stored splits are not those of {fold.split} over its "
                                 f"actors: rerun preprocess and the feature stages")  # fmt: skip
    roles = assign_actor_splits(actors, replace(fold.split, fold=fold.fold))
    return [replace(c, split=roles[c.actor]) for c in clips]


def split_clips(reader: FeatureReader, split: str, fold: VAFold | None = None) -> list[ClipData]:
    """The clips of one split, of `fold` (None: the stored split); an empty split is an
    `InputProblem`."""
    if fold is None:
        clips = load_clips(reader, (split,))
    else:
        clips = [c for c in refold(load_clips(reader, SPLITS), fold, reader.path)
                 if c.split == split]  # fmt: skip
    if not clips:
        raise InputProblem(reader.path, f"no clip in split '{split}'")
    return clips


def input_provenance(reader: FeatureReader) -> dict[str, Any]:
    """Where the inputs came from: travels into every checkpoint."""
    keys = ("backbone", "spec", "config_hash", "weights_hash", "content", "block", "dim",
            "source_settings")  # fmt: skip
    return {k: reader.attrs[k] for k in keys if k in reader.attrs}


def check_same_inputs(ckpt: dict[str, Any], reader: FeatureReader) -> None:
    """Refuse inputs whose provenance differs from what checkpoint `ckpt` was trained on."""
    made, now = ckpt["provenance"].get("inputs", {}), input_provenance(reader)
    keys = set(made) | set(now)
    if not ("source_settings" in made and "source_settings" in now):
        keys.discard("source_settings")  # older checkpoints and caches do not record it
    diff = sorted(k for k in keys if made.get(k) != now.get(k))
    if diff:
        raise InputProblem(
            reader.path, f"inputs differ from those the checkpoint was trained on in {diff}"
        )
