"""Decoding user videos, and embeddings equal to those the pipeline's stages compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affectpipe.data import media
from affectpipe.data.framecrop import crop_clip
from affectpipe.data.media import frames_at, list_videos, probe, sample_frames, write_video
from affectpipe.features import embed as E
from affectpipe.features.backbones import load_backbone
from affectpipe.features.sources import Item
from affectpipe.inference import VoiceMean, embed_clip_video, embed_images, embed_voice, read_voices
from affectpipe.problems import InputProblem
from tests.face_scenes import paste_head


def ramp_video(path, n, fps, size=(64, 48), audio=None):
    """Frame i is uniformly grey level 8*i: the decoded level tells which frame was picked."""
    w, h = size
    frames = np.stack([np.full((h, w, 3), 8 * i, np.uint8) for i in range(n)])
    write_video(path, frames, fps, audio, 16000)
    return path


def frame_number(img: np.ndarray) -> int:
    return int(round(float(img.mean()) / 8))


@pytest.mark.parametrize(("ext", "fps"), [(".mp4", 10), (".avi", 13), (".mov", 7.5)])
def test_sampling_picks_the_frame_nearest_each_time(tmp_path, ext, fps):
    path = ramp_video(tmp_path / f"r{ext}", n=25, fps=fps, size=(97, 71) if ext != ".mp4"
                      else (64, 48))  # fmt: skip
    s = sample_frames(path, rate=4.0, max_side=256)
    assert s.n_decoded == 25
    assert np.allclose(s.times, np.arange(len(s.times)) * 0.25)
    assert s.times[-1] <= 24 / fps < s.times[-1] + 0.25
    picked = [frame_number(img) for img in s.images]
    assert picked == [int(np.round(t * fps + 1e-9)) for t in s.times]


@pytest.mark.parametrize("fps", [30.0, 12.5])
def test_resampling_to_25_fps_takes_the_nearest_frame_as_it_decodes(tmp_path, fps):
    path = ramp_video(tmp_path / "r.mp4", n=30, fps=fps, size=(66, 40))
    sampler = media.FrameSampler(path, 25.0, None)
    picked, decoded_at_first = [], None
    for t, img in sampler:
        decoded_at_first = sampler.n_decoded if decoded_at_first is None else decoded_at_first
        picked.append((t, frame_number(img)))
        assert img.shape == (40, 66, 3)  # max_side None: the stream's own size
    assert decoded_at_first < 30 == sampler.n_decoded  # yielded while decoding, not after
    times = [t for t, _ in picked]
    assert times == pytest.approx(np.arange(len(times)) / 25.0)
    assert times[-1] <= 29 / fps < times[-1] + 1 / 25
    for t, frame in picked:  # the nearest frame (either at a tie)
        assert abs(frame / fps - t) <= 0.5 / fps + 1e-6
    assert sampler.size == (66, 40) and sampler.fps == pytest.approx(fps)


def test_sampling_shrinks_large_frames_keeping_aspect(tmp_path):
    path = ramp_video(tmp_path / "big.mkv", n=3, fps=5, size=(321, 161))
    s = sample_frames(path, rate=4.0, max_side=100)
    assert s.images.shape[1:] == (50, 100, 3)
    info = probe(path)
    assert (info.width, info.height, info.fps, info.has_audio) == (321, 161, 5.0, False)


def test_frames_at_matches_the_preprocessing_decoder(tmp_path):
    path = ramp_video(tmp_path / "r.mp4", n=20, fps=10, size=(96, 64))
    idx = media.sample_indices(20, 16)
    assert np.array_equal(frames_at(path, idx, 48), media.read_frames(path, 48)[idx])
    with pytest.raises(InputProblem, match="decoded 20 of the 21"):
        frames_at(path, np.arange(21), 48)


def test_corrupt_and_empty_files_are_input_problems(tmp_path):
    bad = tmp_path / "bad.webm"
    bad.write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 100)
    with pytest.raises(InputProblem, match="bad.webm"):
        probe(bad)
    with pytest.raises(InputProblem, match="bad.webm"):
        sample_frames(bad, 4.0, 256)
    with pytest.raises(ValueError, match="rate must be > 0"):
        sample_frames(bad, 0, 256)


def test_write_video_refuses_what_its_codec_cannot_hold(tmp_path):
    frames = np.zeros((2, 71, 97, 3), np.uint8)
    with pytest.raises(ValueError, match="needs even sizes"):
        write_video(tmp_path / "a.mp4", frames, 10)
    with pytest.raises(ValueError, match="cannot write '.gif'"):
        write_video(tmp_path / "a.gif", frames, 10)


def test_list_videos_is_recursive_sorted_and_case_insensitive(tmp_path):
    for name in ("b.MP4", "a/c.webm", "a/d.txt", "e.flv", "f.Avi"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_videos(tmp_path)]
    assert found == ["a/c.webm", "b.MP4", "e.flv", "f.Avi"]


# --- same numbers as the extract stage ---------------------------------------------------------


def test_face_embedding_equals_preprocess_then_extract(tmp_path):
    """Preprocess (decode, 16 even frames, face crop, .npy) + extract (VideoMAE) == predict."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (23, 64, 80, 3), dtype=np.uint8)
    for frame in frames:  # a real face to crop, as preprocessing crops it
        paste_head(frame, 12, 4, 56)
    path = tmp_path / "v.mp4"
    write_video(path, frames, 12)
    decoded = media.read_frames(path, 480)
    crop = crop_clip(decoded[media.sample_indices(len(decoded), 16)], "face", 112, 0.25)
    assert crop.used == "face"
    np.save(tmp_path / "v.npy", crop.crops)
    backbone = load_backbone("videomae", "tiny")
    dtype = E.compute_dtype("auto", backbone.device)
    with torch.inference_mode(), E.autocast(backbone.device, dtype):
        inputs = E.prepare(backbone, [Item("v", str(tmp_path / "v.npy"))])
        expected = E.embed("videomae", backbone.model, inputs)[0]
    ours_frames = frames_at(path, media.sample_indices(len(decoded), 16), 480)
    ours = crop_clip(ours_frames, "face", 112, 0.25)
    assert torch.equal(embed_clip_video(backbone, ours.crops, dtype), expected)


def test_voice_embedding_equals_preprocess_then_extract(tmp_path):
    t = np.arange(24000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    path = ramp_video(tmp_path / "v.mp4", n=15, fps=10, audio=wave)
    audio = media.read_track(path, 16000)
    media.write_wav(tmp_path / "v.wav", audio.samples, 16000, subtype="FLOAT")
    backbone = load_backbone("wav2vec2", "tiny")
    dtype = E.compute_dtype("auto", backbone.device)
    item = Item("v", str(tmp_path / "v.wav"), length=len(audio.samples))
    with torch.inference_mode(), E.autocast(backbone.device, dtype):
        inputs = E.prepare(backbone, [item])
        expected = E.embed("wav2vec2", backbone.model, inputs)[0]  # (L + 1, D)
    assert torch.equal(embed_voice(backbone, audio.samples, None, dtype), expected)
    assert torch.equal(embed_voice(backbone, audio.samples, -1, dtype), expected[-1])


def speechlike(seconds: float, rate: int = 16000) -> np.ndarray:
    """A 180 Hz tone swelling 3 times a second: voiced frames between quiet ones."""
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("block", [1, 7000, 10**6])
def test_audio_track_streams_exactly_the_samples_read_track_gives(tmp_path, block):
    path = tmp_path / "v.mp4"
    write_video(path, np.zeros((20, 48, 64, 3), np.uint8), 10, speechlike(2.0, 48000), 48000)
    whole = media.read_track(path, 16000)
    track = media.AudioTrack(path, 16000, block)
    blocks = list(track)
    assert all(len(b) == block for b in blocks[:-1]) and 0 < len(blocks[-1]) <= block
    assert np.array_equal(np.concatenate(blocks), whole.samples)
    assert (track.source_rate, track.n_source / track.source_rate) == (48000, whole.duration_s)


class VoiceOnly:
    """The voice side of an `AVEngine`, on a tiny wav2vec2 (every hidden state)."""

    def __init__(self):
        self.voice = load_backbone("wav2vec2", "tiny")
        self.dtype = E.compute_dtype("auto", self.voice.device)

    def voice_mean(self) -> VoiceMean:
        return VoiceMean(self.voice, self.dtype)

    def voice_embedding(self, mean: VoiceMean) -> torch.Tensor:
        return mean.result()[None]


def clip_settings():
    from affectpipe.config import load_params
    from affectpipe.predict import settings_from_params

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    return settings_from_params(params, "ravdess").clip


def test_a_clip_long_voice_is_embedded_in_one_window_exactly_as_extract_does(tmp_path):
    path = ramp_video(tmp_path / "v.mp4", n=15, fps=10, audio=speechlike(1.5))
    engine = VoiceOnly()
    reading = read_voices(path, {"audio": engine}, clip_settings())
    assert reading.why_none is None and reading.note is None
    voices = reading.voices
    samples = media.read_track(path, 16000).samples
    assert torch.equal(voices["audio"][0], embed_voice(engine.voice, samples, None, engine.dtype))


def test_a_long_voice_is_read_window_by_window_and_the_tail_joins_the_last(tmp_path, monkeypatch):
    from affectpipe import inference

    monkeypatch.setattr(inference, "VOICE_WINDOW_S", 1.0)  # 2.6 s: windows of 1 s and 1.6 s
    path = ramp_video(tmp_path / "v.mp4", n=26, fps=10, audio=speechlike(2.6))
    engine = VoiceOnly()
    reading = read_voices(path, {"audio": engine}, clip_settings())
    voices, why = reading.voices, reading.why_none
    samples = media.read_track(path, 16000).samples
    parts = [samples[:16000], samples[16000:]]
    n = [int(engine.voice.model._get_feat_extract_output_lengths(len(p))) for p in parts]
    embs = [embed_voice(engine.voice, p, None, engine.dtype).double() for p in parts]
    expected = (embs[0] * n[0] + embs[1] * n[1]) / sum(n)
    assert why is None and len(parts[1]) > 16000
    torch.testing.assert_close(voices["audio"][0], expected.float())


def test_audio_too_short_for_the_voice_model_is_a_reason_not_an_error(tmp_path):
    path = tmp_path / "short.wav"
    media.write_wav(path, speechlike(1.0)[:100], 16000)
    reading = read_voices(path, {"audio": VoiceOnly()}, clip_settings())
    assert reading.voices == {}
    assert reading.why_none.startswith("audio too short for the voice model: 100 samples at 16")


def test_a_track_without_speech_gives_no_voice_and_says_why(tmp_path):
    path = ramp_video(tmp_path / "v.mp4", n=15, fps=10, audio=np.zeros(24000, np.float32))
    reading = read_voices(path, {"audio": VoiceOnly()}, clip_settings())
    assert reading.voices == {} and reading.why_none.startswith("no speech")


def test_frame_embeddings_equal_extract_on_saved_crops(tmp_path):
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    items = []
    for i, c in enumerate(crops):
        Image.fromarray(c).save(tmp_path / f"{i}.png")
        items.append(Item("c", str(tmp_path / f"{i}.png")))
    backbone = load_backbone("clip", "tiny")
    dtype = E.compute_dtype("auto", backbone.device)
    with torch.inference_mode(), E.autocast(backbone.device, dtype):
        expected = E.embed("clip", backbone.model, E.prepare(backbone, items))
    assert torch.equal(embed_images(backbone, crops, dtype), expected)
