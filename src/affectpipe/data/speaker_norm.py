"""Speaker normalisation: each clip's features standardised with its own speaker's statistics.

A speaker's voice (and face) dominates clip embeddings; subtracting each speaker's mean and
dividing by their std leaves what varies within a speaker, the expression. Statistics come from
the features alone (no label), over every clip of that speaker in the feature store, and never
from another speaker: folds are speaker-disjoint, so train, validation and test speakers each
use their own. A single video of an unknown speaker has no such statistics; inference then uses
the training set's (`global_statistics`, kept in the checkpoint).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

Stats = tuple[np.ndarray, np.ndarray]  # (mean, std), each the shape of one clip's features
MIN_STD = 1e-6


def statistics(vectors: Iterable[np.ndarray]) -> Stats:
    """Per-dimension mean and (population) std of clip vectors; std floored at `MIN_STD`."""
    x = np.stack(list(vectors)).astype(np.float64)
    return x.mean(0).astype(np.float32), np.maximum(x.std(0), MIN_STD).astype(np.float32)


def speaker_statistics(vectors: Mapping[str, np.ndarray], speaker: Mapping[str, str]) -> dict:
    """{speaker: (mean, std)} over each speaker's own clips (`vectors`: clip id -> features)."""
    clips: dict[str, list[np.ndarray]] = {}
    for clip_id, v in vectors.items():
        clips.setdefault(speaker[clip_id], []).append(v)
    return {s: statistics(vs) for s, vs in sorted(clips.items())}


def standardize(
    vectors: Mapping[str, np.ndarray], speaker: Mapping[str, str], stats: Mapping[str, Stats]
) -> dict[str, np.ndarray]:
    """Each clip's features minus its speaker's mean, over its speaker's std."""
    out = {}
    for clip_id, v in vectors.items():
        mean, std = stats[speaker[clip_id]]
        out[clip_id] = ((v - mean) / std).astype(np.float32)
    return out
