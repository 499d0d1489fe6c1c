"""The speech test: soft speech is kept, silence and stationary noise at any level are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectpipe.data.media import rms_db
from affectpipe.data.speech import SpeechGate, active_seconds, frame_levels, require_speech
from affectpipe.data.synthetic.voice import Speaker, synthesize, voice_style
from affectpipe.problems import InputProblem
from tests.data_configs import config

RATE = 16000
STRESS_DB = (0, -14, -10, -18, -12, -16)  # one stressed syllable, softer ones around it


def gate() -> SpeechGate:
    """The shipped criterion (params.yaml `preprocess.ravdess`)."""
    from affectpipe.data.ravdess import PreprocessConfig

    return config(PreprocessConfig, "preprocess.ravdess").speech_gate()


def soft_speech(peak_db: float, noise_db: float = -90.0, seed: int = 0) -> np.ndarray:
    """A quiet actor's line: voiced harmonic syllables with pauses, 1.5 s of room noise either
    side, scaled to `peak_db`; like real RAVDESS soft speech, its whole-file RMS is far lower."""
    rng = np.random.default_rng(seed)
    syl_s, gap_s = 0.18, 0.15
    t = np.arange(int(syl_s * RATE)) / RATE
    parts = [np.zeros(int(1.5 * RATE))]
    for k, db in enumerate(STRESS_DB):
        f0 = 120 * (1 + 0.1 * np.sin(k))
        voiced = sum(h**-1.0 * np.sin(2 * np.pi * h * f0 * t) for h in range(1, 20))
        parts += [
            10 ** (db / 20) * np.sin(np.pi * t / syl_s) ** 2 * voiced,
            np.zeros(int(gap_s * RATE)),
        ]
    parts.append(np.zeros(int(1.5 * RATE)))
    x = np.concatenate(parts)
    x = x / np.abs(x).max() * 10 ** (peak_db / 20)
    return x + rng.normal(scale=10 ** (noise_db / 20), size=x.size)


@pytest.mark.parametrize("noise_db", [-90.0, -75.0])
def test_soft_speech_below_the_old_rms_threshold_is_kept(noise_db):
    x = soft_speech(-40.0, noise_db)
    assert -65 < rms_db(x) < -63  # a whole-file RMS threshold of -60 dBFS dropped it
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-40, abs=0.5)
    assert require_speech(Path("soft.wav"), x, RATE, gate()) >= 0.5


def test_normal_speech_is_kept():
    rng = np.random.default_rng(0)
    x = synthesize(voice_style(0), Speaker(120.0, 1.0), 1, 2.0, RATE, rng).samples
    assert active_seconds(x, RATE, gate()) > 1.0


def test_all_zero_audio_holds_no_speech():
    with pytest.raises(
        InputProblem, match=r"zero.wav: no speech: 0.00 s of frames above the noise"
    ):
        require_speech(Path("zero.wav"), np.zeros(2 * RATE), RATE, gate())


@pytest.mark.parametrize("level_db", [-100.0, -75.0, -50.0, -20.0, -3.0])
def test_white_noise_at_any_level_holds_no_speech(level_db):
    x = np.random.default_rng(1).normal(scale=10 ** (level_db / 20), size=3 * RATE)
    with pytest.raises(InputProblem, match=r"noise.wav: no speech: 0.00 s"):
        require_speech(Path("noise.wav"), x, RATE, gate())


def test_speech_under_the_absolute_floor_is_not_speech():
    # a burst 30 dB over its own floor, but at -100 dBFS: under the absolute floor
    x = soft_speech(-100.0, noise_db=-130.0)
    assert active_seconds(x, RATE, gate()) == 0.0


def test_too_little_active_time_is_not_speech():
    g = gate()
    x = np.zeros(2 * RATE)
    n = int(g.min_speech_s / 2 * RATE)  # a click half as long as speech must last
    x[RATE : RATE + n] = 0.1 * np.sin(2 * np.pi * 200 * np.arange(n) / RATE)
    assert 0 < active_seconds(x, RATE, g) < g.min_speech_s
    with pytest.raises(InputProblem, match="no speech"):
        require_speech(Path("click.wav"), x, RATE, g)


def test_frames_are_25_ms_every_10_ms_and_a_too_short_signal_has_none():
    assert len(frame_levels(np.ones(RATE), RATE)) == (RATE - 400) // 160 + 1
    assert frame_levels(np.ones(399), RATE).size == 0
    assert active_seconds(np.ones(399), RATE, gate()) == 0.0
