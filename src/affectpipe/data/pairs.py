"""Face/voice congruence pairs, drawn within each actor-disjoint split (`data/splits.py`).

Pairs come from clips that have both a face and a voice, so every face appears once congruent
(with its own voice) and, at ratio 1, once incongruent, and faces and voices come from the same
kind of recording: nothing but the agreement of the two tells a pair's label. Incongruent pairs
are *hard* (same actor and sentence, different emotion: only the emotion differs) or *easy* (any
other clip with a different emotion), recorded separately.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from affectpipe.config import params_section
from affectpipe.data.splits import SPLITS

PAIR_COLUMNS = [
    "split",
    "face_clip",
    "voice_clip",
    "kind",
    "congruent",
    "face_emotion",
    "voice_emotion",
]


@params_section
class PairConfig:
    incongruent_ratio: float  # incongruent pairs per congruent pair
    hard_fraction: float  # share of incongruent pairs that are hard

    def __post_init__(self) -> None:
        if self.incongruent_ratio < 0:
            raise ValueError(f"incongruent_ratio={self.incongruent_ratio} must be >= 0")
        if not 0 <= self.hard_fraction <= 1:
            raise ValueError(f"hard_fraction={self.hard_fraction} not in [0, 1]")


def _draw(
    faces: pd.DataFrame, voices: pd.DataFrame, n: int, hard: bool, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """`n` (face, voice) incongruent pairs, cycling over faces in a seeded order."""
    out: list[tuple[str, str]] = []
    if n == 0 or faces.empty:
        return out
    order = rng.permutation(len(faces))
    used: set[tuple[str, str]] = set()
    for step in range(len(faces) * 4):
        if len(out) == n:
            break
        f = faces.iloc[order[step % len(faces)]]
        same_take = (voices.actor == f.actor) & (voices.statement == f.statement)
        cand = voices[(voices.emotion != f.emotion) & (same_take if hard else ~same_take)]
        cand = cand[[(f.clip_id, v) not in used for v in cand.clip_id]]
        if cand.empty:
            continue
        v = cand.clip_id.iloc[int(rng.integers(len(cand)))]
        used.add((f.clip_id, v))
        out.append((f.clip_id, v))
    return out


def make_pairs(clips: pd.DataFrame, cfg: PairConfig, seed: int) -> pd.DataFrame:
    """Congruent, hard and easy pairs per split from clips with both face and voice."""
    rows = []
    emotion = dict(zip(clips.clip_id, clips.emotion, strict=True))
    for s_i, split in enumerate(SPLITS):
        av = clips[(clips.split == split) & (clips.has_video == 1) & (clips.has_audio == 1)]
        av = av.sort_values("clip_id").reset_index(drop=True)
        rng = np.random.default_rng([seed, s_i])
        n_inc = int(round(cfg.incongruent_ratio * len(av)))
        n_hard = int(round(cfg.hard_fraction * n_inc))
        drawn = [("congruent", c, c) for c in av.clip_id]
        drawn += [("hard", f, v) for f, v in _draw(av, av, n_hard, True, rng)]
        drawn += [("easy", f, v) for f, v in _draw(av, av, n_inc - n_hard, False, rng)]
        for kind, f, v in drawn:
            rows.append((split, f, v, kind, int(kind == "congruent"), emotion[f], emotion[v]))
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    return pairs.sort_values(["split", "face_clip", "kind", "voice_clip"]).reset_index(drop=True)
