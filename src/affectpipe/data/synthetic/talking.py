"""Talking-face clips and voices for the synthetic RAVDESS and CREMA-D look-alikes.

The face holds the clip's emotion (one expression per emotion, scaled by intensity) while the
mouth opens with the voice's syllable envelope and the head drifts a little, so each modality
carries the emotion alone and a face can be paired with any voice of the same length.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from affectpipe.data.labels import EMOTION_ID
from affectpipe.data.synthetic.faces import Expression, Identity, Nuisance, render_face
from affectpipe.data.synthetic.voice import Speaker, Voice, synthesize, voice_style

# Brow tilt separates emotions that sit close in valence-arousal: anger pulls the inner brows
# down, sadness and fear raise them; disgust frowns with narrowed eyes; surprise opens everything.
EMOTION_FACE: dict[int, Expression] = {
    EMOTION_ID["neutral"]: Expression(0.0, 0.12, 0.5, 0.0, 0.0),
    EMOTION_ID["calm"]: Expression(0.3, 0.08, 0.32, -0.1, 0.0),
    EMOTION_ID["happy"]: Expression(0.95, 0.35, 0.6, 0.25, 0.0),
    EMOTION_ID["sad"]: Expression(-0.65, 0.08, 0.3, 0.05, 0.9),
    EMOTION_ID["angry"]: Expression(-0.45, 0.3, 0.8, -0.75, -0.95),
    EMOTION_ID["fearful"]: Expression(-0.3, 0.45, 0.98, 0.8, 0.75),
    EMOTION_ID["disgust"]: Expression(-0.75, 0.15, 0.25, -0.45, -0.35),
    EMOTION_ID["surprised"]: Expression(0.1, 0.7, 1.0, 1.0, 0.1),
}
MOUTH_TALK = 0.35  # extra mouth opening at a syllable's peak


def emotion_expression(emotion: int, strength: float = 1.0) -> Expression:
    """The emotion's expression, its departure from neutral scaled by `strength`."""
    neutral, target = EMOTION_FACE[EMOTION_ID["neutral"]], EMOTION_FACE[emotion]
    return Expression(
        **{
            f.name: getattr(neutral, f.name)
            + strength * (getattr(target, f.name) - getattr(neutral, f.name))
            for f in fields(Expression)
        }
    )


@dataclass(frozen=True)
class Actor:
    """Everything constant about one synthetic actor."""

    identity: Identity
    speaker: Speaker
    camera: Nuisance

    @staticmethod
    def sample(rng: np.random.Generator, female: bool) -> Actor:
        return Actor(Identity.sample(rng), Speaker.sample(rng, female), Nuisance.sample(rng))


def render_talking(
    actor: Actor,
    expr: Expression,
    voice: Voice,
    fps: int,
    width: int,
    height: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Frames uint8 (T, H, W, 3) covering the voice's duration at `fps`."""
    n = int(round(len(voice.samples) / voice.sample_rate * fps))
    mouth = voice.envelope_at(np.arange(n) / fps)
    nuis = actor.camera
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        nuis = nuis.jitter(rng)
        e = Expression(
            mouth_curve=expr.mouth_curve + float(rng.normal(0, 0.03)),
            mouth_open=expr.mouth_open + MOUTH_TALK * float(mouth[i]),
            eye_open=expr.eye_open,
            brow_raise=expr.brow_raise,
            brow_tilt=expr.brow_tilt,
        )
        frames[i], _ = render_face(e, actor.identity, nuis, width, height, rng)
    return frames


def make_clip(
    actor: Actor,
    emotion: int,
    strength: float,
    sentence: int,
    duration: float,
    sample_rate: int,
    fps: int,
    size: tuple[int, int],
    rng: np.random.Generator,
    video: bool = True,
    face_emotion: int | None = None,
) -> tuple[np.ndarray | None, Voice]:
    """One performance: (frames (T, H, W, 3) or None, voice), the face showing `face_emotion`
    when given (a performance whose face and voice disagree), else the voice's `emotion`."""
    voice = synthesize(
        voice_style(emotion, strength), actor.speaker, sentence, duration, sample_rate, rng
    )
    if not video:
        return None, voice
    expr = emotion_expression(emotion if face_emotion is None else face_emotion, strength)
    return render_talking(actor, expr, voice, fps, size[0], size[1], rng), voice
