"""Audio and video decoding: every bad input is a one-line problem naming the file."""

from __future__ import annotations

import struct

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from affectpipe.data import media
from affectpipe.data.framecrop import center_box, crop_clip, foreground_box
from affectpipe.data.synthetic.voice import Speaker, synthesize, voice_style
from affectpipe.problems import InputProblem


def tone(seconds: float, rate: int, hz: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def frames(n: int, w: int = 64, h: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(n, h, w, 3), dtype=np.uint8)


def test_wav_is_read_as_16k_mono_float(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.stack([tone(1.0, 48000)] * 2, 1), 48000, subtype="PCM_16")
    audio = media.read_wav(path, 16000)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert len(audio.samples) == 16000 and audio.source_rate == 48000
    assert audio.duration_s == pytest.approx(1.0)
    assert audio.loudness_db == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.1)


def test_zero_length_wav_is_a_problem(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(InputProblem, match=r"empty.wav: empty audio \(0 samples\)"):
        media.read_wav(path, 16000)


def test_silent_wav_decodes_and_speech_is_a_separate_question(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    assert media.read_wav(path, 16000).loudness_db == float("-inf")  # data.speech decides


def test_unreadable_wav_is_a_problem(tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(b"RIFF not really")
    with pytest.raises(InputProblem, match="junk.wav: unreadable WAV"):
        media.read_wav(path, 16000)


def test_mp4_audio_track_matches_the_wav_it_was_made_from(tmp_path):
    rng = np.random.default_rng(1)
    sig = synthesize(voice_style(4), Speaker(120.0, 1.0), 1, 1.0, 48000, rng).samples
    media.write_video(tmp_path / "a.mp4", frames(15), 15, sig, 48000)
    track = media.read_track(tmp_path / "a.mp4", 16000)
    ref = soxr.resample(sig, 48000, 16000)
    n = min(len(track.samples), len(ref))
    assert abs(len(track.samples) - len(ref)) < 0.02 * len(ref)
    r = np.corrcoef(track.samples[:n], ref[:n])[0, 1]
    assert r > 0.9, f"AAC round trip correlation {r:.3f}"


def test_mp4_without_audio_track_is_a_problem(tmp_path):
    media.write_video(tmp_path / "silent.mp4", frames(20), 15)
    with pytest.raises(InputProblem, match="silent.mp4: no audio track in the container"):
        media.read_track(tmp_path / "silent.mp4", 16000)


def test_truncated_video_is_a_problem(tmp_path):
    media.write_video(tmp_path / "ok.mp4", frames(20), 15)
    data = (tmp_path / "ok.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputProblem, match="cut.mp4: undecodable video"):
        media.read_frames(tmp_path / "cut.mp4")


def test_flv_round_trip_keeps_frames_and_audio(tmp_path):
    media.write_video(tmp_path / "a.flv", frames(20), 15, tone(1.0, 16000), 16000)
    assert media.read_frames(tmp_path / "a.flv").shape == (20, 48, 64, 3)
    assert media.read_track(tmp_path / "a.flv", 16000).source_rate == 16000


def test_decode_shrinks_large_frames(tmp_path):
    media.write_video(tmp_path / "big.mp4", frames(3, 320, 180), 15)
    assert media.read_frames(tmp_path / "big.mp4", max_side=160).shape == (3, 90, 160, 3)


@pytest.mark.parametrize(
    ("available", "wanted", "expected"),
    [
        (16, 16, list(range(16))),
        (31, 4, [0, 10, 20, 30]),
        (5, 1, [0]),
        (32, 4, [0, 10, 21, 31]),
    ],
)
def test_frame_indices_spread_evenly_first_to_last(available, wanted, expected):
    assert media.sample_indices(available, wanted).tolist() == expected


@pytest.mark.parametrize(
    ("available", "wanted", "expected"),
    [(2, 4, [0, 0, 1, 1]), (3, 7, [0, 0, 1, 1, 1, 2, 2]), (1, 3, [0, 0, 0])],
)
def test_short_clips_repeat_frames_evenly_in_order(available, wanted, expected):
    assert media.sample_indices(available, wanted).tolist() == expected


def test_no_frames_to_pick_from_is_an_error():
    with pytest.raises(ValueError, match="cannot pick 16 frames from 0"):
        media.sample_indices(0, 16)


def test_every_writable_container_is_a_video_extension_and_reads_back(tmp_path):
    assert set(media.CONTAINERS) <= set(media.VIDEO_EXTS)
    for ext in media.CONTAINERS:
        path = tmp_path / f"a{ext}"
        media.write_video(path, frames(6), 15, tone(0.4, 16000), 16000)
        info = media.probe(path)
        assert (info.width, info.height, info.fps, info.has_audio) == (64, 48, 15.0, True), ext
        video = media.read_video(path)
        assert video.frames.shape == (6, 48, 64, 3) and video.note is None, ext
        # AAC in FLV keeps the encoder's priming and padding (no edit list): a few frames more
        audio = media.read_track(path, 16000)
        assert 0.35 < audio.duration_s < 0.6 and audio.note is None, ext


def test_audio_without_its_rate_is_refused(tmp_path):
    with pytest.raises(ValueError, match="without its audio_rate"):
        media.write_video(tmp_path / "a.mp4", frames(2), 15, tone(0.1, 16000))


def test_encoding_is_byte_stable(tmp_path):
    for name in ("a.mp4", "b.mp4"):
        media.write_video(tmp_path / name, frames(10), 15, tone(0.7, 48000), 48000)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_foreground_box_finds_a_blob_on_a_shaded_background():
    h, w = 60, 80
    ramp = np.linspace(60, 140, w)[None, :, None]  # uneven lighting, left to right
    img = np.broadcast_to(ramp, (h, w, 3)).copy()
    img[20:40, 30:46] = 250  # the "face"
    clip = np.repeat(img[None].astype(np.uint8), 4, axis=0)
    x0, y0, x1, y1 = foreground_box(clip, margin=0.0)
    assert (x1 - x0) == (y1 - y0) == 20  # square around the 16x20 blob
    assert x0 <= 30 and x1 >= 46 and y0 <= 20 and y1 >= 40


def test_plain_frames_fall_back_to_a_centre_crop():
    clip = np.full((4, 48, 64, 3), 128, np.uint8)
    crop = crop_clip(clip, "foreground", 32, 0.1)
    assert crop.fell_back and crop.used == "center" and crop.crops.shape == (4, 32, 32, 3)
    assert center_box(48, 64) == (8, 0, 56, 48)


def test_float_wav_round_trips_and_is_byte_stable(tmp_path):
    sig = tone(0.5, 16000)
    media.write_float_wav(tmp_path / "a.wav", sig, 16000)
    media.write_float_wav(tmp_path / "b.wav", sig, 16000)
    back, rate = sf.read(tmp_path / "a.wav", dtype="float32")
    assert rate == 16000 and np.array_equal(back, sig)
    assert sf.info(tmp_path / "a.wav").subtype == "FLOAT"
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


# ------------------------------------------------------------------ rotation (display matrix)


def upright_scene(w: int = 48, h: int = 64) -> np.ndarray:
    """A portrait image no turn or flip maps onto itself: a white block at the top left, a red
    bar along the bottom."""
    img = np.full((h, w, 3), 40, np.uint8)
    img[: h // 3, : w // 3] = 255
    img[-h // 6 :, :] = (255, 0, 0)
    return img


def tkhd_matrix(path) -> tuple[int, ...]:
    """The video track header's 3x3 matrix as stored (ISO/IEC 14496-12 tkhd, version 0)."""
    data = path.read_bytes()
    at = data.index(b"tkhd") + 4 + 40  # version/flags, times, track id, duration, layer...
    return struct.unpack(">9i", data[at : at + 36])


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_a_rotated_video_decodes_upright_at_its_displayed_size(tmp_path, rotation):
    scene = upright_scene()
    # stored as a camera stores it: turned so that the display matrix's turn makes it upright
    stored = np.ascontiguousarray(np.rot90(scene, -round(rotation / 90)))
    path = tmp_path / "phone.mp4"
    media.write_video(path, np.repeat(stored[None], 6, axis=0), 15, rotation=rotation)
    with av.open(str(path)) as c:  # the file itself carries the matrix
        assert next(c.decode(video=0)).rotation % 360 == rotation % 360
    if rotation == -90:  # a phone's portrait recording: QuickTime's matrix (0 1 / -1 0)
        a, b, _, c, d, *_ = tkhd_matrix(path)
        assert (a, b, c, d) == (0, 1 << 16, -(1 << 16), 0)
    info = media.probe(path)
    assert (info.width, info.height, info.rotation % 360) == (48, 64, rotation % 360)
    full = media.read_frames(path, max_side=480)
    assert full.shape == (6, 64, 48, 3)
    assert np.abs(full.astype(int) - scene).mean() < 8  # upright, not turned or mirrored
    assert media.read_frames(path, max_side=32).shape == (6, 32, 24, 3)  # shrunk as displayed
    assert media.frames_at(path, np.array([0, 5]), 32).shape == (2, 32, 24, 3)
    sampler = media.FrameSampler(path, 15.0, None)
    picked = [img for _, img in sampler]
    assert sampler.size == (48, 64) and picked[0].shape == (64, 48, 3)
    assert np.array_equal(picked[0], full[0])
    sampler = media.FrameSampler(path, 15.0, 32)
    assert next(iter(sampler))[1].shape == (32, 24, 3) and sampler.size == (24, 32)


# ------------------------------------------------------------------------------ truncation


def lie_about_length(path, factor: int) -> None:
    """Make a WAV's `data` chunk declare `factor` times the bytes the file holds."""
    data = bytearray(path.read_bytes())
    at = data.index(b"data") + 4
    (size,) = struct.unpack("<I", data[at : at + 4])
    data[at : at + 4] = struct.pack("<I", size * factor)
    path.write_bytes(bytes(data))


def cut_with_index_in_front(src, dst, keep: float) -> None:
    """Remux `src` with its index (moov) in front, as phones and web encoders write, then keep
    the first `keep` of its bytes: a download or copy cut short."""
    full = dst.with_suffix(".full.mp4")
    with av.open(str(src)) as i, av.open(str(full), "w", options={"movflags": "faststart"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for packet in i.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                o.mux(packet)
    data = full.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    dst.write_bytes(data[: int(len(data) * keep)])
    full.unlink()


def test_a_wav_whose_header_declares_more_than_it_holds_is_kept_with_a_note(tmp_path):
    path = tmp_path / "short.wav"
    media.write_wav(path, tone(3.0, 48000), 48000)
    assert media.read_wav(path, 16000).note is None
    lie_about_length(path, 10)
    assert media.wav_declared_s(path) == pytest.approx(30.0)
    audio = media.read_wav(path, 16000)
    assert audio.note == "truncated: header declares 30.00 s, 3.00 s of audio present (kept)"
    assert audio.duration_s == pytest.approx(3.0) and audio.samples.size == 48000


def test_the_riff_walk_reads_every_chunk_layout_and_claims_nothing_of_other_files(tmp_path):
    media.write_float_wav(tmp_path / "a.wav", tone(0.5, 16000), 16000)  # fmt, fact, data
    assert media.wav_declared_s(tmp_path / "a.wav") == pytest.approx(0.5)
    sf.write(tmp_path / "b.wav", tone(0.5, 22050), 22050, subtype="PCM_24")
    assert media.wav_declared_s(tmp_path / "b.wav") == pytest.approx(0.5, abs=1e-4)
    lie_about_length(tmp_path / "b.wav", 1)  # unchanged: the header tells the truth
    assert media.read_wav(tmp_path / "b.wav", 16000).note is None
    (tmp_path / "c.wav").write_bytes(b"not a wav at all")
    assert media.wav_declared_s(tmp_path / "c.wav") is None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (np.inf, r"1 of 8000 audio samples are not finite \(inf/NaN\)"),
        (np.nan, r"1 of 8000 audio samples are not finite \(inf/NaN\)"),
        (1e30, r"audio sample of magnitude 1e\+30, beyond 100 \(full scale 1\)"),
    ],
)
def test_a_float_wav_with_impossible_samples_is_refused(tmp_path, bad, reason):
    samples = tone(0.5, 16000)
    samples[100] = bad
    media.write_float_wav(tmp_path / "odd.wav", samples, 16000)
    with pytest.raises(InputProblem, match=f"odd.wav: {reason}"):
        media.read_wav(tmp_path / "odd.wav", 16000)


def test_an_mp4_cut_short_keeps_what_decodes_with_a_note(tmp_path):
    media.write_video(tmp_path / "ok.mp4", frames(60), 15, tone(4.0, 16000), 16000)
    cut_with_index_in_front(tmp_path / "ok.mp4", tmp_path / "cut.mp4", keep=0.5)
    audio = media.read_track(tmp_path / "cut.mp4", 16000)
    assert audio.note is not None and audio.note.startswith("truncated: header declares 4.0")
    assert audio.note.endswith("s of audio present (kept)") and 1.0 < audio.duration_s < 3.5
    video = media.read_video(tmp_path / "cut.mp4")
    assert video.note is not None and video.note.startswith("truncated: header declares 4.00 s")
    assert video.note.endswith("s of video present (kept)") and 10 < len(video.frames) < 55
    sampler = media.FrameSampler(tmp_path / "cut.mp4", 5.0, None)
    assert len(list(sampler)) < 20 and sampler.note is not None
    # the intact file: no note
    assert media.read_video(tmp_path / "ok.mp4").note is None
    assert media.read_track(tmp_path / "ok.mp4", 16000).note is None
