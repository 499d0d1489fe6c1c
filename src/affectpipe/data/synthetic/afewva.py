"""A synthetic AFEW-VA: drawn faces whose expression follows a smooth valence/arousal trajectory.

Written in AFEW-VA's exact layout and JSON format (`NNN/NNNNN.png`, `NNN/NNN.json`), so the
same reader handles it and the real dataset. Labels are integers on the -10..10 scale, as in the
real annotations, while the face is drawn from the continuous trajectory: the quantisation is a
small, realistic label noise. Identity and viewing conditions vary per actor and per clip, so an
actor-disjoint split tests generalisation to unseen faces.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from affectpipe.config import params_section
from affectpipe.data.synthetic.faces import Identity, Nuisance, expression_from_va, render_face


@params_section
class SyntheticAfewvaConfig:
    actors: int
    clips_per_actor: int
    frames_per_clip: int
    width: int
    height: int
    seed: int

    def __post_init__(self) -> None:
        for name in ("actors", "clips_per_actor", "frames_per_clip", "width", "height"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"synthetic AFEW-VA: {name} must be >= 1, got {getattr(self, name)}"
                )
        if self.actors * self.clips_per_actor > 999:
            raise ValueError("synthetic AFEW-VA: at most 999 clips (3-digit clip ids)")


def va_trajectory(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth (n_frames, 2) valence/arousal path in [-1, 1]: offset + a few slow sinusoids."""
    t = np.arange(n_frames)[:, None] / 25.0  # seconds at AFEW-VA's 25 fps
    offset = rng.uniform(-0.6, 0.6, size=(1, 2))
    freq = rng.uniform(0.05, 0.4, size=(3, 2))
    phase = rng.uniform(0, 2 * np.pi, size=(3, 2))
    amp = rng.uniform(0.1, 0.45, size=(3, 2))
    path = offset + sum(amp[k] * np.sin(2 * np.pi * freq[k] * t + phase[k]) for k in range(3))
    return np.clip(path, -1.0, 1.0)


def write_synthetic_afewva(cfg: SyntheticAfewvaConfig, out_dir: Path) -> int:
    """Write the synthetic dataset into `out_dir`; returns the number of frames written."""
    rng = np.random.default_rng(cfg.seed)
    identities = [Identity.sample(rng) for _ in range(cfg.actors)]
    n_clips = cfg.actors * cfg.clips_per_actor
    written = 0
    for clip_idx in tqdm(range(n_clips), desc="synthetic AFEW-VA", unit="clip"):
        actor = clip_idx % cfg.actors  # interleave actors so clip ids do not reveal the split
        video_id = f"{clip_idx + 1:03d}"
        clip_dir = out_dir / video_id
        clip_dir.mkdir(parents=True, exist_ok=True)
        va = va_trajectory(cfg.frames_per_clip, rng)
        labels = np.rint(va * 10).astype(int)
        nuisance = Nuisance.sample(rng)
        as_float = clip_idx % 2 == 0  # the real files mix `5.0` and `5`: exercise both
        frames = {}
        for f in range(cfg.frames_per_clip):
            nuisance = nuisance.jitter(rng)
            expr = expression_from_va(*va[f])
            img, lm = render_face(expr, identities[actor], nuisance, cfg.width, cfg.height, rng)
            key = f"{f:05d}"
            Image.fromarray(img).save(clip_dir / f"{key}.png", optimize=False)
            v, a = (float(x) if as_float else int(x) for x in labels[f])
            frames[key] = {
                "valence": v,
                "arousal": a,
                "landmarks": np.round(lm, 3).tolist(),
            }
            written += 1
        annotation = {
            "actor": f"Synthetic Actor {actor + 1:02d}",
            "video_id": video_id,
            "frames": frames,
        }
        (clip_dir / f"{video_id}.json").write_text(json.dumps(annotation, indent=1) + "\n")
    return written
