"""Decoding user videos, and embeddings equal to those the pipeline's stages compute."""

from __future__ import annotations

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
from affectpipe.inference import embed_clip_video, embed_images, embed_voice
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
