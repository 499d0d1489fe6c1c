"""A small CREMA-D look-alike in the official layout and naming.

`VideoFlash/NNNN_SSS_EEE_LL.flv` (H.264 + AAC in FLV, with audio) and
`AudioWAV/NNNN_SSS_EEE_LL.wav` (16 kHz 16-bit) of the same performance. As in the real set,
only the sentence IEO is spoken at graded levels (LO/MD/HI); every other clip, and neutral,
is `XX` (unspecified).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from affectpipe.config import params_section
from affectpipe.data.labels import CREMAD_EMOTION
from affectpipe.data.media import write_video, write_wav
from affectpipe.data.synthetic.talking import Actor, make_clip

SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = ("LO", "MD", "HI", "XX")
LEVEL_STRENGTH = {"LO": 0.5, "MD": 0.8, "HI": 1.1, "XX": 0.8}


@params_section
class SyntheticCremadConfig:
    actors: int
    first_actor: int
    sentences: list[str]
    ieo_levels: list[str]  # the graded sentence
    duration_s: float
    fps: int
    width: int  # the real videos are 480x360
    height: int
    sample_rate: int
    seed: int  # its own seed, tracked with this section's params

    def __post_init__(self) -> None:
        bad = sorted(set(self.sentences) - set(SENTENCES))
        if bad:
            raise ValueError(f"synthetic cremad: sentences {bad} invalid; valid: {list(SENTENCES)}")
        bad = sorted(set(self.ieo_levels) - set(LEVELS))
        if bad:
            raise ValueError(f"synthetic cremad: ieo_levels {bad} invalid; valid: {list(LEVELS)}")
        if self.width % 2 or self.height % 2:
            raise ValueError(f"synthetic cremad: {self.width}x{self.height} must be even (yuv420)")


def performances(cfg: SyntheticCremadConfig):
    """(actor, sentence, emotion code, level) tuples in the real naming."""
    for actor in range(cfg.first_actor, cfg.first_actor + cfg.actors):
        for sentence in cfg.sentences:
            for code in sorted(CREMAD_EMOTION):
                graded = sentence == "IEO" and code != "NEU"
                for level in cfg.ieo_levels if graded else ["XX"]:
                    yield actor, sentence, code, level


def generate(cfg: SyntheticCremadConfig, out_dir: Path) -> list[Path]:
    """Write the dataset under `out_dir`; returns the files written."""
    seed = cfg.seed
    written: list[Path] = []
    rng_sex = np.random.default_rng([seed, 0])
    actors = {
        a: Actor.sample(np.random.default_rng([seed, a]), female=bool(rng_sex.integers(2)))
        for a in range(cfg.first_actor, cfg.first_actor + cfg.actors)
    }
    for a, s, code, level in tqdm(list(performances(cfg)), desc="synthetic cremad", unit="clip"):
        emotion = CREMAD_EMOTION[code]
        rng = np.random.default_rng([seed, a, SENTENCES.index(s), emotion, LEVELS.index(level)])
        frames, voice = make_clip(
            actors[a],
            emotion,
            LEVEL_STRENGTH[level],
            SENTENCES.index(s) + 100,
            cfg.duration_s,
            cfg.sample_rate,
            cfg.fps,
            (cfg.width, cfg.height),
            rng,
        )
        stem = f"{a}_{s}_{code}_{level}"
        wav, flv = out_dir / "AudioWAV" / f"{stem}.wav", out_dir / "VideoFlash" / f"{stem}.flv"
        write_wav(wav, voice.samples, cfg.sample_rate)
        write_video(flv, frames, cfg.fps, voice.samples, cfg.sample_rate)
        written += [wav, flv]
    return written
