"""The synthetic voices and talking faces carry the emotion, each modality on its own."""

from __future__ import annotations

import numpy as np
import pytest

from affectpipe.data.labels import EMOTION_ID, N_EMOTIONS
from affectpipe.data.synthetic.faces import face_landmarks
from affectpipe.data.synthetic.talking import EMOTION_FACE, Actor, emotion_expression, make_clip
from affectpipe.data.synthetic.voice import Speaker, synthesize, voice_style

SR = 16000


def voice(emotion: str, speaker: Speaker, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return synthesize(voice_style(EMOTION_ID[emotion]), speaker, 1, 2.0, SR, rng).samples


def pitch(x: np.ndarray) -> float:
    """Median autocorrelation pitch (Hz) over the loud 40 ms frames."""
    frames = x[: len(x) // 640 * 640].reshape(-1, 640)
    loud = frames[(frames**2).mean(1) > 0.3 * (frames**2).mean(1).max()]
    f0 = []
    for f in loud:
        ac = np.correlate(f, f, "full")[len(f) - 1 :]
        lo, hi = SR // 500, SR // 60
        f0.append(SR / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0))


def centroid(x: np.ndarray) -> float:
    """Power-spectrum centroid (Hz): where the energy sits, the usual brightness measure."""
    spec = np.abs(np.fft.rfft(x)) ** 2
    return float((spec * np.fft.rfftfreq(len(x), 1 / SR)).sum() / spec.sum())


@pytest.mark.parametrize("speaker", [Speaker(110.0, 1.0), Speaker(210.0, 1.15)])
def test_voice_prosody_follows_the_emotion(speaker):
    angry, sad, fear = (voice(e, speaker) for e in ("angry", "sad", "fearful"))
    loud = {k: np.sqrt((v**2).mean()) for k, v in (("angry", angry), ("sad", sad))}
    assert loud["angry"] > 2 * loud["sad"]  # energy
    assert centroid(angry) > centroid(sad)  # spectral tilt: anger is brighter
    assert pitch(fear) > 1.3 * pitch(sad)  # pitch level


def test_base_pitch_comes_from_the_speaker():
    low, high = voice("neutral", Speaker(100.0, 1.0)), voice("neutral", Speaker(200.0, 1.0))
    assert pitch(high) == pytest.approx(2 * pitch(low), rel=0.15)


def test_voice_is_seeded_and_in_range():
    a, b = voice("happy", Speaker(150.0, 1.0), 3), voice("happy", Speaker(150.0, 1.0), 3)
    assert np.array_equal(a, b) and np.abs(a).max() <= 1.0 and a.dtype == np.float32


def test_every_emotion_has_a_distinct_face():
    vecs = np.array([list(vars(EMOTION_FACE[e]).values()) for e in range(N_EMOTIONS)])
    dist = np.linalg.norm(vecs[:, None] - vecs[None], axis=-1)
    assert dist[~np.eye(N_EMOTIONS, dtype=bool)].min() > 0.3


def test_brow_tilt_separates_anger_from_fear_and_sadness():
    tilt = {e: emotion_expression(EMOTION_ID[e]).brow_tilt for e in ("angry", "fearful", "sad")}
    assert tilt["angry"] < 0 < tilt["fearful"] and tilt["sad"] > 0


def test_intensity_scales_the_departure_from_neutral():
    weak, strong = (
        emotion_expression(EMOTION_ID["happy"], 0.5),
        emotion_expression(EMOTION_ID["happy"], 1.0),
    )
    assert 0 < weak.mouth_curve < strong.mouth_curve


def test_mouth_opens_with_the_syllables():
    actor = Actor.sample(np.random.default_rng(0), female=True)
    frames, v = make_clip(
        actor, EMOTION_ID["neutral"], 1.0, 1, 1.5, SR, 15, (64, 48), np.random.default_rng(1)
    )
    assert frames.shape == (22, 48, 64, 3)
    env = v.envelope_at(np.arange(len(frames)) / 15)
    assert env.max() > 0.8 and env.min() == 0.0  # syllables and pauses
    lm = face_landmarks(emotion_expression(0), actor.identity, actor.camera, 64, 48)
    assert lm.shape == (68, 2)


def test_a_quiet_actor_keeps_the_emotion_cues_after_16_bit_storage(tmp_path):
    """A quiet actor is a lower recording gain: once stored as 16-bit PCM and normalised per
    utterance (as wav2vec2's processor does) the voice is the loud one's, so the prosody an
    emotion classifier reads survives; the relative energy between emotions does too."""
    import soundfile as sf

    from affectpipe.data.media import rms_db
    from affectpipe.data.synthetic.voice import Voice

    gain = -32.0
    stored = {}
    for emotion in ("angry", "sad"):
        rng = np.random.default_rng(0)
        loud = synthesize(voice_style(EMOTION_ID[emotion]), Speaker(120.0, 1.0), 1, 2.0, SR, rng)
        quiet = loud.scaled(gain)
        assert isinstance(quiet, Voice) and np.array_equal(quiet.envelope, loud.envelope)
        assert rms_db(quiet.samples) == pytest.approx(rms_db(loud.samples) + gain, abs=0.01)
        sf.write(tmp_path / "q.wav", quiet.samples, SR, subtype="PCM_16")
        back, _ = sf.read(tmp_path / "q.wav", dtype="float32")
        norm = [(v - v.mean()) / v.std() for v in (back, loud.samples)]
        assert np.corrcoef(*norm)[0, 1] > 0.99, emotion
        stored[emotion] = back
    assert np.sqrt((stored["angry"] ** 2).mean()) > 2 * np.sqrt((stored["sad"] ** 2).mean())
    assert pitch(stored["angry"]) > pitch(stored["sad"])
