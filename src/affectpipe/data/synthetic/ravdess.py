"""A small RAVDESS look-alike in the official layout and naming.

`Actor_XX/01-01-EE-II-SS-RR-AA.mp4` (H.264 + AAC), optionally the video-only twin
`02-...mp4` and the audio-only `03-...wav` (48 kHz 16-bit) of the same performance, as the
real release documents them: the 02 is the 01 remuxed without its audio (the same video
packets; encoded alone, with the same encoder settings, when no 01 is written) and the 03 holds
the voice samples the 01's AAC track was encoded from. Odd actors are male, even female; neutral
has no strong intensity. The `quiet_actors` are recorded `quiet_gain_db` lower, as soft-spoken
real actors are (whole-file RMS near -62 dBFS): their speech must survive preprocessing's
speech test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from affectpipe.config import params_section
from affectpipe.data.labels import N_EMOTIONS
from affectpipe.data.media import remux_video_only, write_video, write_wav
from affectpipe.data.synthetic.talking import Actor, make_clip

INTENSITY_STRENGTH = {1: 0.7, 2: 1.0}


@params_section
class SyntheticRavdessConfig:
    actors: int
    statements: list[int]
    repetitions: int
    intensities: list[int]
    modalities: list[int]  # 01 AV, 02 video, 03 audio
    duration_s: float
    fps: int
    width: int  # the real videos are 1280x720; small keeps the default run fast
    height: int
    sample_rate: int
    quiet_actors: list[int]  # recorded quieter: soft speech preprocessing must keep
    quiet_gain_db: float  # their recording gain
    seed: int  # its own seed, tracked with this section's params

    def __post_init__(self) -> None:
        for name, values, valid in (
            ("statements", self.statements, (1, 2)),
            ("intensities", self.intensities, (1, 2)),
            ("modalities", self.modalities, (1, 2, 3)),
        ):
            bad = sorted(set(values) - set(valid))
            if bad:
                raise ValueError(f"synthetic ravdess: {name} {bad} invalid; valid: {list(valid)}")
        if not 1 <= self.actors <= 24:
            raise ValueError(f"synthetic ravdess: actors={self.actors}, expected 1..24")
        bad = sorted(set(self.quiet_actors) - set(range(1, self.actors + 1)))
        if bad:
            raise ValueError(f"synthetic ravdess: quiet_actors {bad} not in 1..{self.actors}")
        if self.width % 2 or self.height % 2:
            raise ValueError(f"synthetic ravdess: {self.width}x{self.height} must be even (yuv420)")


def ravdess_name(
    modality: int, emotion: int, intensity: int, statement: int, rep: int, actor: int
) -> str:
    """Official file stem; `emotion` is the unified id (RAVDESS code minus one)."""
    codes = (modality, 1, emotion + 1, intensity, statement, rep, actor)
    return "-".join(f"{c:02d}" for c in codes)


def performances(cfg: SyntheticRavdessConfig):
    """(actor, emotion, intensity, statement, repetition) tuples, neutral only at normal."""
    for actor in range(1, cfg.actors + 1):
        for emotion in range(N_EMOTIONS):
            for intensity in cfg.intensities if emotion else [1]:
                for statement in cfg.statements:
                    for rep in range(1, cfg.repetitions + 1):
                        yield actor, emotion, intensity, statement, rep


def generate(cfg: SyntheticRavdessConfig, out_dir: Path) -> list[Path]:
    """Write the dataset under `out_dir`; returns the files written."""
    seed = cfg.seed
    written: list[Path] = []
    actors = {
        a: Actor.sample(np.random.default_rng([seed, a]), female=a % 2 == 0)
        for a in range(1, cfg.actors + 1)
    }
    video = bool({1, 2} & set(cfg.modalities))
    for a, e, i, s, r in tqdm(list(performances(cfg)), desc="synthetic ravdess", unit="clip"):
        rng = np.random.default_rng([seed, a, e, i, s, r])
        frames, voice = make_clip(
            actors[a],
            e,
            INTENSITY_STRENGTH[i],
            s,
            cfg.duration_s,
            cfg.sample_rate,
            cfg.fps,
            (cfg.width, cfg.height),
            rng,
            video=video,
        )
        if a in cfg.quiet_actors:
            voice = voice.scaled(cfg.quiet_gain_db)
        folder = out_dir / f"Actor_{a:02d}"
        paths = {
            m: folder / (ravdess_name(m, e, i, s, r, a) + (".wav" if m == 3 else ".mp4"))
            for m in sorted(cfg.modalities)
        }
        for m, path in paths.items():
            if m == 3:
                write_wav(path, voice.samples, cfg.sample_rate)
            elif m == 2 and 1 in paths:
                remux_video_only(paths[1], path)  # the 01's very video stream, as released
            else:  # 01, or an 02 without one: the stream the 01 would hold
                audio = voice.samples if m == 1 else None
                write_video(path, frames, cfg.fps, audio, cfg.sample_rate)
            written.append(path)
    return written
