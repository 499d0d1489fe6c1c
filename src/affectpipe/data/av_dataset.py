"""Face/voice pairs as tensors: cached clip embeddings joined to the pair tables, per split.

Samples are the congruence pairs of `data/processed/<ds>/pairs.csv`: the face embedding of
`face_clip` (VideoMAE) with the voice embedding of `voice_clip` (wav2vec2). Targets per pair:
- `face_emotion` / `voice_emotion` for the per-modality heads, on every pair;
- the fused `emotion` only on congruent pairs: an incongruent pair has no single true emotion (the
  face says one thing, the voice another), so its fused target is ignored (`losses.IGNORE`) and
  it teaches the model through the per-modality heads and the congruence head only;
- `congruent` (1/0) for the congruence head, on every pair.
No backbone runs here: the embeddings are read once from the HDF5 feature store. A clip's
features are one vector (D,), or (L, D) from a *layered* store (file attribute `layers`: one
pooled vector per backbone hidden state, e.g. wav2vec2's), which the model reads as its config
says. With speaker normalisation every clip is standardised by its own speaker's statistics
(`affectpipe.data.speaker_norm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from affectpipe.data.av_pairs import (
    CLIP_COLUMNS,
    SIDES,
    read_table,
    single_clips,
    split_pairs,
    validate_pairs,
)
from affectpipe.data.labels import EMOTIONS
from affectpipe.data.pairs import PAIR_COLUMNS, PairConfig
from affectpipe.data.speaker_norm import Stats, speaker_statistics, standardize, statistics
from affectpipe.data.splits import configured_test_fold
from affectpipe.features.store import FeatureReader, open_features
from affectpipe.losses import IGNORE
from affectpipe.problems import InputProblem, ProblemLog

PROVENANCE_KEYS = ("backbone", "spec", "config_hash", "weights_hash", "preprocessing",
                   "source_settings", "layers")  # fmt: skip
SPEAKER = "actor"  # the per-clip attribute that names the speaker


def store_layers(reader: FeatureReader) -> int | None:
    """Hidden states per clip of a layered store (attribute `layers`), None for one vector."""
    layers = reader.attrs.get("layers")
    return int(layers) if layers is not None else None


def clip_vector(reader: FeatureReader, clip_id: str) -> np.ndarray:
    """A clip's features: rows mean-pooled, (n, dim) -> (dim,); a layered store's row is
    (layers * dim) and comes back as (layers, dim)."""
    v = np.asarray(reader[clip_id], dtype=np.float32).mean(axis=0)
    layers = store_layers(reader)
    return v.reshape(layers, -1) if layers is not None else v


def _speaker(reader: FeatureReader, clip_id: str) -> str:
    labels = reader.labels(clip_id)
    if SPEAKER not in labels:
        why = "speaker normalisation needs each clip's speaker"
        raise InputProblem(reader.path, f"clip '{clip_id}' has no '{SPEAKER}' attribute: {why}")
    return str(labels[SPEAKER])


def standardize_by_speaker(
    reader: FeatureReader, vectors: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """`vectors` standardised per speaker, each speaker's statistics over all of its clips in
    the store (not only those asked for: any subset of a speaker's clips is normalised alike)."""
    speaker = {c: _speaker(reader, c) for c in reader.clip_ids}
    wanted = {speaker[c] for c in vectors}
    own = {c: clip_vector(reader, c) for c in reader.clip_ids if speaker[c] in wanted}
    return standardize(vectors, speaker, speaker_statistics(own, speaker))


def load_clip_embeddings(
    path: Path,
    clip_ids: set[str],
    log: ProblemLog,
    expect: dict | None = None,
    speaker_norm: bool = False,
) -> dict[str, np.ndarray]:
    """One vector per clip from a feature file (`clip_vector`): (dim,), or (layers, dim).

    `expect` (provenance attributes, e.g. from a checkpoint) refuses features made otherwise;
    `speaker_norm` standardises each clip by its own speaker's statistics
    (`standardize_by_speaker`).
    """
    out: dict[str, np.ndarray] = {}
    with open_features(path, expect) as reader:
        available = set(reader.clip_ids)
        for clip_id in sorted(clip_ids):
            if clip_id not in available:
                log.report(InputProblem(path, f"no features for clip '{clip_id}'"))
                continue
            out[clip_id] = clip_vector(reader, clip_id)
        if speaker_norm and out:
            out = standardize_by_speaker(reader, out)
    return out


def _stacked(clips: pd.Series, vectors: dict[str, np.ndarray], shape: tuple, used: bool):
    """The vectors of `clips` as one tensor; for a side the model does not read, (n, 0) zeros."""
    if not used:
        return torch.zeros((len(clips), 0), dtype=torch.float32)
    if len(clips):
        return torch.from_numpy(np.stack([vectors[c] for c in clips]))
    return torch.zeros((0, *shape), dtype=torch.float32)


class PairDataset(Dataset):
    """(face, voice) embedding pairs with their four targets, held as tensors."""

    def __init__(
        self,
        pairs: pd.DataFrame,
        face: dict[str, np.ndarray],
        voice: dict[str, np.ndarray],
        log: ProblemLog,
        source: str = "pairs.csv",
        sides: tuple[str, ...] = ("face", "voice"),
    ):
        keep = []
        for row in pairs.itertuples(index=False):
            ends = {"face": (row.face_clip, face), "voice": (row.voice_clip, voice)}
            lacking = [c for side, (c, d) in ends.items() if side in sides and c not in d]
            if lacking:
                log.report(
                    InputProblem(
                        source,
                        f"pair {row.face_clip}+{row.voice_clip} skipped: no features for {lacking}",
                    )
                )
            else:
                keep.append(row)
        self.pairs = pd.DataFrame(keep, columns=pairs.columns).reset_index(drop=True)
        p = self.pairs
        shape_f = next(iter(face.values())).shape if face else (0,)
        shape_v = next(iter(voice.values())).shape if voice else (0,)
        self.face = _stacked(p.face_clip, face, shape_f, "face" in sides)
        self.voice = _stacked(p.voice_clip, voice, shape_v, "voice" in sides)
        self.face_emotion = torch.as_tensor(p.face_emotion.to_numpy(copy=True), dtype=torch.long)
        self.voice_emotion = torch.as_tensor(p.voice_emotion.to_numpy(copy=True), dtype=torch.long)
        self.congruent = torch.as_tensor(p.congruent.to_numpy(copy=True), dtype=torch.float32)
        self.emotion = torch.where(self.congruent > 0, self.face_emotion, IGNORE)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "face": self.face[i],
            "voice": self.voice[i],
            "emotion": self.emotion[i],
            "face_emotion": self.face_emotion[i],
            "voice_emotion": self.voice_emotion[i],
            "congruent": self.congruent[i],
            "index": torch.tensor(i),
        }


def check_labels(dataset: PairDataset, classes: list[int], source: str) -> None:
    """Every emotion label must be one of the dataset's classes (no silent masking of targets)."""
    labels = torch.cat([dataset.face_emotion, dataset.voice_emotion]).unique().tolist()
    bad = sorted(set(labels) - set(classes))
    if bad:
        raise InputProblem(source, f"emotion ids {bad} are not among the classes {classes}")


@dataclass
class AVData:
    """Everything one training run reads: pair datasets per split and provenance."""

    splits: dict[str, PairDataset]
    classes: list[int]
    dims: tuple[int, int]  # face and voice feature width (D)
    test_fold: int
    dropped_pairs: int
    provenance: dict
    voice_layers: int | None  # hidden states per clip of a layered voice store, else None
    # the training clips' (mean, std) of each raw input, face and voice: with speaker
    # normalisation, the statistics an unknown speaker is standardised with (else None, None)
    global_stats: tuple[Stats | None, Stats | None]


def load_av_data(
    processed_dir: Path,
    face_path: Path,
    voice_path: Path,
    classes: list[int],
    log: ProblemLog,
    test_fold: int | None = None,
    pair_cfg: PairConfig | None = None,
    seed: int = 0,
    expect: dict[str, dict] | None = None,
    *,
    by_speaker: bool,
    modality: str,
) -> AVData:
    """Read manifests and cached embeddings; build the per-split pair datasets.

    `test_fold` None (or preprocessing's own test fold) uses `pairs.csv` as written; another
    fold re-splits by actor fold and redraws pairs with `pair_cfg` (see `split_pairs`).
    `by_speaker`: standardise every clip's features by its own speaker's statistics.
    `modality` (`fusion`, `audio`, `video`): the sides the model reads; only those are loaded.
    On a one-modality release (no clip has both sides: RAVDESS's speech-audio zip, CREMA-D's
    `AudioWAV/` alone) a single-modality model reads its clips (`single_clips`), as there are no
    pairs; otherwise pairs only, since a RAVDESS `02`/`03` clip (one whose files differ from
    its `01`'s, `ravdess.sources`) repeats that `01` recording.
    """
    clips = read_table(processed_dir / "clips.csv", CLIP_COLUMNS)
    pairs = read_table(processed_dir / "pairs.csv", PAIR_COLUMNS)
    validate_pairs(clips, pairs, processed_dir / "pairs.csv")
    fold = configured_test_fold(clips) if test_fold is None else test_fold
    own = fold == configured_test_fold(clips)
    by_split, dropped = split_pairs(clips, pairs, None if own else fold, pair_cfg, seed)
    sides = SIDES[modality]
    if len(sides) == 1 and not ((clips.has_video == 1) & (clips.has_audio == 1)).any():
        singles = single_clips(clips, sides[0], None if own else fold)
        by_split = {s: pd.concat([p, singles[singles.split == s]], ignore_index=True)
                    for s, p in by_split.items()}  # fmt: skip
    used = pd.concat(by_split.values())
    expect = expect or {}
    face: dict[str, np.ndarray] = {}
    voice: dict[str, np.ndarray] = {}
    if "face" in sides:
        face = load_clip_embeddings(face_path, set(used.face_clip), log,
                                    expect.get("face_features"))  # fmt: skip
    if "voice" in sides:
        voice = load_clip_embeddings(voice_path, set(used.voice_clip), log,
                                     expect.get("voice_features"))  # fmt: skip
    stats: tuple[Stats | None, Stats | None] = (None, None)
    if by_speaker:  # fallback statistics from the raw training clips, then each speaker's own
        train = by_split["train"]
        stats = tuple(  # type: ignore[assignment]
            statistics([d[c] for c in sorted(set(clips_)) if c in d]) if d else None
            for d, clips_ in ((face, train.face_clip), (voice, train.voice_clip))
        )
        with open_features(face_path) as r:
            face = standardize_by_speaker(r, face)
        with open_features(voice_path) as r:
            voice = standardize_by_speaker(r, voice)
    splits = {
        s: PairDataset(p, face, voice, log, str(processed_dir / "pairs.csv"), sides)
        for s, p in by_split.items()
    }
    for s, ds in splits.items():
        check_labels(ds, classes, str(processed_dir / "pairs.csv"))
        if len(ds) == 0:
            why = " (preprocessing made no validation fold: `val_fold: -1`; training selects its"
            why = why + " epoch on validation, so it needs one)" if s == "val" else ""
            raise InputProblem(processed_dir / "pairs.csv", f"no usable pairs in split '{s}'{why}")
    dims = (splits["train"].face.shape[-1], splits["train"].voice.shape[-1])
    provenance = {}
    for name, path in (("face", face_path), ("voice", voice_path)):  # both checked, read or not
        with open_features(path, expect.get(f"{name}_features")) as r:
            provenance[f"{name}_features"] = {
                k: r.attrs[k] for k in PROVENANCE_KEYS if k in r.attrs
            }
            if name == "voice":
                voice_layers = store_layers(r)
            elif store_layers(r) is not None:
                why = "only the voice has a layer choice (train_multimodal.voice_layers)"
                raise InputProblem(path, f"a layered store as face features: {why}")
    return AVData(splits, list(classes), dims, fold, dropped, provenance, voice_layers, stats)


def pair_frame(
    dataset: PairDataset,
    outputs: dict[str, np.ndarray],
    threshold: float = 0.5,
    raw: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per pair: ids, kind, true labels, predictions and class probabilities.

    `outputs` holds the model's `head_probabilities` per pair and each pair's dataset `index`;
    `congruence_pred` is `congruence_prob >= threshold` (kept in `congruence_threshold`). When
    `outputs` are calibrated (`calibration.Calibration.apply`), `raw` holds the model's own
    probabilities: they go to `raw_prob_<emotion>` and `congruence_prob_raw`.
    """
    df = dataset.pairs.iloc[outputs["index"].astype(np.int64)].reset_index(drop=True).copy()
    df["emotion_true"] = np.where(df.congruent == 1, df.face_emotion, IGNORE)
    df["emotion_pred"] = outputs["emotion"].argmax(1)
    for head in ("face_emotion", "voice_emotion"):
        if head in outputs:
            df[f"{head}_pred"] = outputs[head].argmax(1)
    for c, name in enumerate(EMOTIONS):
        df[f"prob_{name}"] = outputs["emotion"][:, c]
        if raw is not None:
            df[f"raw_prob_{name}"] = raw["emotion"][:, c]
    if "congruence" in outputs:
        df["congruence_prob"] = outputs["congruence"]
        df["congruence_pred"] = (outputs["congruence"] >= threshold).astype(int)
        df["congruence_threshold"] = threshold
        if raw is not None:
            df["congruence_prob_raw"] = raw["congruence"]
    return df
