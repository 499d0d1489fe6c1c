"""A small CREMA-D look-alike in the official layout and naming.

`VideoFlash/NNNN_SSS_EEE_LL.flv` (H.264 + AAC in FLV, with audio) and
`AudioWAV/NNNN_SSS_EEE_LL.wav` (16 kHz 16-bit) of the same performance. As in the real set,
only the sentence IEO is spoken at graded levels (LO/MD/HI); every other clip, and neutral,
is `XX` (unspecified).

As in the real set, some performances do not land in both modalities: a seeded
`incongruent_fraction` of clips shows another emotion in one of them (face or voice, drawn).
The file name keeps the intended (acted) emotion, which the other modality carries, as CREMA-D's
names keep what the actor was asked to show. `processedResults/summaryTable.csv` then holds
simulated crowd ratings of what was rendered, in the published format: per clip and way (voice
only, face only, audio-visual) `RATERS` raters each name the shown emotion with probability
`RATER_ACCURACY`, another one otherwise, and rate its level; the majority vote keeps ties
(`A:D`), as the real table does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from affectpipe.config import params_section
from affectpipe.data.labels import CREMAD_EMOTION
from affectpipe.data.media import write_video, write_wav
from affectpipe.data.perceived import LETTER_OF, SUMMARY, Vote, write_summary
from affectpipe.data.synthetic.talking import Actor, make_clip

SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = ("LO", "MD", "HI", "XX")
LEVEL_STRENGTH = {"LO": 0.5, "MD": 0.8, "HI": 1.1, "XX": 0.8}
RATERS = (8, 12)  # raters per clip and way, drawn in this range (CREMA-D: about 10)
RATER_ACCURACY = 0.65  # a rater names the shown emotion with this probability


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
    incongruent_fraction: float  # clips whose face or voice shows another emotion than acted
    quiet_actors: list[int]  # recorded quieter: soft speech preprocessing must keep
    quiet_gain_db: float  # their recording gain
    seed: int  # its own seed, tracked with this section's params

    def __post_init__(self) -> None:
        bad = sorted(set(self.sentences) - set(SENTENCES))
        if bad:
            raise ValueError(f"synthetic cremad: sentences {bad} invalid; valid: {list(SENTENCES)}")
        bad = sorted(set(self.ieo_levels) - set(LEVELS))
        if bad:
            raise ValueError(f"synthetic cremad: ieo_levels {bad} invalid; valid: {list(LEVELS)}")
        if not 0 <= self.incongruent_fraction <= 1:
            raise ValueError(
                f"synthetic cremad: incongruent_fraction={self.incongruent_fraction} not in [0, 1]"
            )
        if self.width % 2 or self.height % 2:
            raise ValueError(f"synthetic cremad: {self.width}x{self.height} must be even (yuv420)")
        ids = range(self.first_actor, self.first_actor + self.actors)
        bad = sorted(set(self.quiet_actors) - set(ids))
        if bad:
            raise ValueError(f"synthetic cremad: quiet_actors {bad} not in {ids[0]}..{ids[-1]}")


def performances(cfg: SyntheticCremadConfig):
    """(actor, sentence, emotion code, level) tuples in the real naming."""
    for actor in range(cfg.first_actor, cfg.first_actor + cfg.actors):
        for sentence in cfg.sentences:
            for code in sorted(CREMAD_EMOTION):
                graded = sentence == "IEO" and code != "NEU"
                for level in cfg.ieo_levels if graded else ["XX"]:
                    yield actor, sentence, code, level


def rate(shown: tuple[int, ...], strength: float, rng: np.random.Generator) -> Vote:
    """Simulated crowd vote on a clip showing `shown` (one emotion per modality rated): each
    rater picks a shown emotion, names it with probability `RATER_ACCURACY` (else another of the
    six) and rates its level; the majority, ties kept, with each voted emotion's mean level."""
    classes = sorted(CREMAD_EMOTION.values())
    picks: dict[int, list[float]] = {}
    for _ in range(int(rng.integers(RATERS[0], RATERS[1] + 1))):
        e = shown[int(rng.integers(len(shown)))]
        right = rng.random() < RATER_ACCURACY
        if not right:
            e = int(rng.choice([c for c in classes if c != e]))
        level = rng.normal(40 + 30 * strength if right else 30, 12)
        picks.setdefault(e, []).append(float(np.clip(round(level), 1, 100)))
    top = max(len(v) for v in picks.values())
    voted = sorted((e for e, v in picks.items() if len(v) == top), key=LETTER_OF.__getitem__)
    return Vote(tuple(voted), tuple(round(float(np.mean(picks[e])), 2) for e in voted))


def _take(cfg: SyntheticCremadConfig, a: int, s: str, code: str, level: str) -> list[int]:
    """The seed of one performance's rendering; its plan and ratings extend it."""
    return [cfg.seed, a, SENTENCES.index(s), CREMAD_EMOTION[code], LEVELS.index(level)]


def shown(cfg: SyntheticCremadConfig) -> dict[str, tuple[int, int]]:
    """File stem -> (face, voice) emotion rendered: the acted one in both, or, for a seeded
    `incongruent_fraction` of performances, another one in the face or (drawn) the voice."""
    out = {}
    classes = sorted(CREMAD_EMOTION.values())
    for a, s, code, level in performances(cfg):
        emotion, rng = (
            CREMAD_EMOTION[code],
            np.random.default_rng([*_take(cfg, a, s, code, level), 1]),
        )
        pair = (emotion, emotion)
        if rng.random() < cfg.incongruent_fraction:
            other = int(rng.choice([c for c in classes if c != emotion]))
            pair = (other, emotion) if rng.random() < 0.5 else (emotion, other)
        out[f"{a}_{s}_{code}_{level}"] = pair
    return out


def generate(cfg: SyntheticCremadConfig, out_dir: Path) -> list[Path]:
    """Write the dataset and its ratings table under `out_dir`; returns the files written."""
    seed = cfg.seed
    written: list[Path] = []
    votes: dict[str, dict[str, Vote]] = {}
    rng_sex = np.random.default_rng([seed, 0])
    actors = {
        a: Actor.sample(np.random.default_rng([seed, a]), female=bool(rng_sex.integers(2)))
        for a in range(cfg.first_actor, cfg.first_actor + cfg.actors)
    }
    plan = shown(cfg)
    for a, s, code, level in tqdm(list(performances(cfg)), desc="synthetic cremad", unit="clip"):
        stem, take = f"{a}_{s}_{code}_{level}", _take(cfg, a, s, code, level)
        rng = np.random.default_rng(take)
        raters = np.random.default_rng([*take, 2])  # apart: the rendering stream is unchanged
        face, voice_emotion = plan[stem]
        frames, voice = make_clip(
            actors[a],
            voice_emotion,
            LEVEL_STRENGTH[level],
            SENTENCES.index(s) + 100,
            cfg.duration_s,
            cfg.sample_rate,
            cfg.fps,
            (cfg.width, cfg.height),
            rng,
            face_emotion=face,
        )
        if a in cfg.quiet_actors:
            voice = voice.scaled(cfg.quiet_gain_db)
        strength = LEVEL_STRENGTH[level]
        votes[stem] = {
            "voice": rate((voice_emotion,), strength, raters),
            "face": rate((face,), strength, raters),
            "av": rate((face, voice_emotion), strength, raters),
        }
        wav, flv = out_dir / "AudioWAV" / f"{stem}.wav", out_dir / "VideoFlash" / f"{stem}.flv"
        write_wav(wav, voice.samples, cfg.sample_rate)
        write_video(flv, frames, cfg.fps, voice.samples, cfg.sample_rate)
        written += [wav, flv]
    write_summary(out_dir / SUMMARY, votes)
    return [*written, out_dir / SUMMARY]
