"""A voice-like signal whose prosody carries a known emotion.

Not speech, but built from what emotion changes in speech (Scherer 2003; Banse & Scherer 1996):
a harmonic source with a pitch contour (level, range, tremor, final rise), vowel formants shaping
the harmonics, a syllable-rate amplitude envelope, aspiration noise and a spectral tilt (bright
for anger, dull for sadness). The speaker sets the base pitch and formant scale, the sentence
sets the vowel sequence, so an emotion classifier has to read prosody, not identity or text.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from affectpipe.data.labels import EMOTION_ID

# (F1, F2, F3) in Hz for an adult male vocal tract; a speaker scales them.
VOWELS: tuple[tuple[float, float, float], ...] = (
    (730, 1090, 2440),  # a
    (530, 1840, 2480),  # e
    (270, 2290, 3010),  # i
    (570, 840, 2410),  # o
    (300, 870, 2240),  # u
    (660, 1720, 2410),  # ae
)
FORMANT_BW = (90.0, 110.0, 170.0)
MAX_HARMONICS = 40


@dataclass(frozen=True)
class VoiceStyle:
    """Prosodic settings of one emotion."""

    pitch: float = 1.0  # f0 multiplier over the speaker's base
    pitch_range: float = 0.12  # depth of the intonation contour, fraction of f0
    energy_db: float = 0.0  # level relative to neutral
    rate: float = 4.0  # syllables per second
    tilt: float = 1.2  # harmonic k has amplitude k**-tilt: higher is duller
    breath: float = 0.03  # aspiration noise relative to voicing
    tremor: float = 0.0  # 6 Hz f0 modulation depth (fear)
    final_rise: float = 0.0  # pitch rise over the last quarter (surprise)


EMOTION_VOICE: dict[int, VoiceStyle] = {
    EMOTION_ID["neutral"]: VoiceStyle(),
    EMOTION_ID["calm"]: VoiceStyle(0.94, 0.07, -4.0, 3.4, 1.45, 0.06),
    EMOTION_ID["happy"]: VoiceStyle(1.25, 0.32, 3.0, 4.6, 0.85, 0.03),
    EMOTION_ID["sad"]: VoiceStyle(0.88, 0.04, -7.0, 2.9, 1.7, 0.08, 0.01),
    EMOTION_ID["angry"]: VoiceStyle(1.18, 0.22, 8.0, 4.9, 0.45, 0.05),
    EMOTION_ID["fearful"]: VoiceStyle(1.42, 0.16, 1.0, 5.4, 1.0, 0.07, 0.05),
    EMOTION_ID["disgust"]: VoiceStyle(0.9, 0.18, -1.0, 3.2, 1.05, 0.1),
    EMOTION_ID["surprised"]: VoiceStyle(1.36, 0.38, 2.0, 4.2, 0.9, 0.04, 0.0, 0.35),
}


def voice_style(emotion: int, strength: float = 1.0) -> VoiceStyle:
    """The emotion's style, its departure from neutral scaled by `strength` (intensity)."""
    neutral, target = EMOTION_VOICE[EMOTION_ID["neutral"]], EMOTION_VOICE[emotion]
    return VoiceStyle(
        **{
            f.name: getattr(neutral, f.name)
            + strength * (getattr(target, f.name) - getattr(neutral, f.name))
            for f in fields(VoiceStyle)
        }
    )


@dataclass(frozen=True)
class Speaker:
    """Per-actor voice: base pitch and vocal-tract (formant) scale."""

    f0: float
    formant_scale: float

    @staticmethod
    def sample(rng: np.random.Generator, female: bool) -> Speaker:
        if female:
            return Speaker(float(rng.uniform(175, 235)), float(rng.uniform(1.1, 1.2)))
        return Speaker(float(rng.uniform(95, 140)), float(rng.uniform(0.95, 1.05)))


@dataclass(frozen=True)
class Voice:
    """A synthesised utterance and its syllable envelope (drives the talking mouth)."""

    samples: np.ndarray  # (N,) float32 in [-1, 1]
    envelope: np.ndarray  # (N,) float32 in [0, 1]
    sample_rate: int

    def scaled(self, gain_db: float) -> Voice:
        """The same utterance recorded at another gain (a quiet actor: the room noise drops
        with the voice, as a lower microphone gain would have it)."""
        samples = np.clip(self.samples * 10 ** (gain_db / 20), -1, 1).astype(np.float32)
        return Voice(samples, self.envelope, self.sample_rate)

    def envelope_at(self, times_s: np.ndarray) -> np.ndarray:
        idx = np.clip((times_s * self.sample_rate).astype(int), 0, len(self.envelope) - 1)
        return self.envelope[idx]


def _syllables(style: VoiceStyle, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Syllable onset times (s), at the style's rate with natural timing jitter."""
    onsets, t = [], 0.12 + float(rng.uniform(0, 0.05))
    while t < duration - 0.9 / style.rate - 0.08:
        onsets.append(t)
        t += float(rng.uniform(0.8, 1.2)) / style.rate
    return np.asarray(onsets)


def _envelope(onsets: np.ndarray, length: float, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample syllable amplitude (Hann bumps) and the index of the current syllable."""
    t = np.arange(n) / sr
    env = np.zeros(n, np.float32)
    which = np.zeros(n, int)
    for k, t0 in enumerate(onsets):
        inside = (t >= t0) & (t < t0 + length)
        env[inside] = np.sin(np.pi * (t[inside] - t0) / length) ** 0.7
        which[t >= t0] = k
    return env, which


def synthesize(
    style: VoiceStyle,
    speaker: Speaker,
    sentence: int,
    duration: float,
    sample_rate: int,
    rng: np.random.Generator,
) -> Voice:
    """Render `duration` seconds of voice. `sentence` seeds the vowel sequence (the text)."""
    n = int(round(duration * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    onsets = _syllables(style, duration, rng)
    env, which = _envelope(onsets, 0.85 / style.rate, n, sample_rate)
    vowels = np.random.default_rng(sentence).integers(0, len(VOWELS), size=max(len(onsets), 1))
    formants = np.asarray(VOWELS, dtype=np.float64)[vowels[which]] * speaker.formant_scale  # (N, 3)

    accents = rng.uniform(-1, 1, size=max(len(onsets), 1))[which]  # one pitch accent per syllable
    u = t / duration
    contour = style.pitch_range * (0.6 * accents - 0.4 * (u - 0.5))
    contour += style.final_rise * np.clip((u - 0.75) / 0.25, 0, 1) ** 2
    contour += style.tremor * np.sin(2 * np.pi * 6.0 * t)
    f0 = speaker.f0 * style.pitch * (1 + contour)  # (N,) Hz
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate

    voiced = np.zeros(n)
    for k in range(1, MAX_HARMONICS + 1):
        fk = k * f0
        if fk.min() > 0.45 * sample_rate:
            break
        # resonance gain of the vowel's formants at this harmonic's frequency, per sample
        gain = sum(1 / (1 + ((fk - formants[:, i]) / bw) ** 2) for i, bw in enumerate(FORMANT_BW))
        gain = gain * (fk < 0.45 * sample_rate)
        voiced += (k**-style.tilt) * (0.15 + gain) * np.sin(k * phase)
    voiced /= np.abs(voiced).max() + 1e-9

    breath = 1.5 * rng.normal(size=n)  # aspiration: breathy voices (sadness, calm) carry more
    floor = rng.normal(scale=10 ** (-65 / 20), size=n)  # room and microphone noise
    level = 0.12 * 10 ** (style.energy_db / 20)
    y = level * env * (voiced + style.breath * breath) + floor
    return Voice(np.clip(y, -1, 1).astype(np.float32), env, sample_rate)
