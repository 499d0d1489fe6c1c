"""RAVDESS ships a speech recording up to three times (01 audio-video mp4, 02 its video-only
twin, 03 its wav): preprocessing decodes and embeds it once where the files show they hold the
same recording, and keeps the files apart where they do not."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from affectpipe.data import av, media, ravdess
from affectpipe.problems import ProblemLog
from tests.test_ravdess import download_config, preprocess_config

TINY = {
    "actors": 2,  # two folds need two actors
    "statements": [1],
    "repetitions": 1,
    "intensities": [2],
    "modalities": [1, 2, 3],
    "duration_s": 1.2,
    "fps": 15,
    "width": 64,
    "height": 48,
    "sample_rate": 48000,
    "quiet_actors": [],
}
RECORDINGS = 2 * 8  # 2 actors x 1 statement x (neutral + 7 strong)
A1 = "Actor_01"


def synthetic(out: Path, **changes) -> Path:
    ravdess.download(download_config(synthetic={**TINY, **changes}), out)
    return out


def counting(monkeypatch) -> Counter[str]:
    """Count the decodes preprocessing asks for, by reader and file name."""
    calls: Counter[str] = Counter()
    for name in ("read_video", "read_track", "read_wav"):
        real = getattr(av.media, name)

        def counted(path, *args, _real=real, _name=name, **kwargs):
            calls[f"{_name} {Path(path).name[:2]}"] += 1
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(av.media, name, counted)
    return calls


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return synthetic(tmp_path_factory.mktemp("rec") / "raw")


def by_name(entries: list[dict]) -> dict[str, str]:
    return {e["path"].split("/")[-1]: e.get("reason") or e.get("note") for e in entries}


def test_synthetic_02_is_the_01_remuxed_and_03_the_01_tracks_samples(raw, tmp_path):
    for av_file in sorted(raw.rglob("01-*.mp4")):
        twin = av_file.with_name(f"02{av_file.name[2:]}")
        wav = av_file.with_name(f"03{av_file.stem[2:]}.wav")
        assert media.video_stream_digest(twin) == media.video_stream_digest(av_file)
        assert not media.has_audio_track(twin)
        track_s = media.audio_declared_s(av_file)
        assert media.wav_declared_s(wav) == pytest.approx(track_s, abs=1e-3)
    # an 02 written without its 01 (a video-only release) holds the very same stream
    alone = synthetic(tmp_path / "alone", modalities=[2])
    for twin in sorted(alone.rglob("02-*.mp4")):
        released = raw / twin.relative_to(alone)
        assert media.video_stream_digest(twin) == media.video_stream_digest(released)


def test_a_full_release_gives_one_clip_per_recording_video_from_01_audio_from_03(
    raw, tmp_path, monkeypatch
):
    calls = counting(monkeypatch)
    report = ravdess.preprocess(preprocess_config(), raw, tmp_path, seed=0)
    clips = pd.read_csv(tmp_path / "clips.csv")
    assert len(clips) == report["clips"] == RECORDINGS
    assert clips.clip_id.str.startswith("01-").all()
    assert (clips.has_video == 1).all() and (clips.has_audio == 1).all()
    # each recording's video decoded once (the 01), its audio once (the lossless 03 wav)
    assert calls == {"read_video 01": RECORDINGS, "read_wav 03": RECORDINGS}
    inputs = report["inputs"]
    assert inputs["unaccounted"] == [] and report["skipped"] == []
    assert inputs["used"] == 2 * RECORDINGS  # 01 mp4s (video) and 03 wavs (audio)
    ignored = by_name(inputs["ignored_files"])
    for twin in sorted(raw.rglob("02-*.mp4")):
        assert ignored[twin.name] == (
            f"same video stream as 01{twin.name[2:]}: decoded and embedded once, as that clip"
        )
    assert f"{RECORDINGS} video-only (02) files hold their 01 file's video stream" in " ".join(
        report["notes"]
    )


@pytest.fixture(scope="module")
def altered(raw, tmp_path_factory):
    """The release with a re-encoded 02, an 02 that does not demux and a 03 of another length;
    preprocessed with its decodes counted."""
    root = tmp_path_factory.mktemp("altered") / "raw"
    shutil.copytree(raw, root)
    a1 = root / A1
    frames = media.read_frames(a1 / "01-01-02-02-01-01-01.mp4")  # calm
    media.write_video(a1 / "02-01-02-02-01-01-01.mp4", frames[:, ::-1], 15)  # mirrored, re-encoded
    (a1 / "02-01-03-02-01-01-01.mp4").write_bytes(b"not an mp4")  # happy
    wav = a1 / "03-01-04-02-01-01-01.wav"  # sad
    data, rate = sf.read(wav, dtype="float32")
    sf.write(wav, data[: len(data) // 2], rate)  # half the recording
    out = tmp_path_factory.mktemp("altered") / "out"
    with pytest.MonkeyPatch.context() as mp:
        calls = counting(mp)
        report = ravdess.preprocess(preprocess_config(), root, out, seed=0)
    return report, pd.read_csv(out / "clips.csv").set_index("clip_id"), calls


def test_a_reencoded_02_stays_its_own_clip_with_a_note(altered):
    report, clips, _ = altered
    assert clips.loc["02-01-02-02-01-01-01", ["has_video", "has_audio"]].tolist() == [1, 0]
    assert clips.loc["01-01-02-02-01-01-01", ["has_video", "has_audio"]].tolist() == [1, 1]
    note = next(n for n in report["notes"] if n.startswith("2 video-only (02) files with an 01"))
    assert note.endswith("kept as clips of their own: 2 whose video stream is not their 01 "
                         "file's, packet for packet")  # fmt: skip
    assert "02-01-02-02-01-01-01.mp4" not in by_name(report["inputs"]["ignored_files"])


def test_an_02_that_does_not_demux_is_kept_and_its_decode_says_why(altered):
    report, clips, _ = altered
    assert "02-01-03-02-01-01-01" not in clips.index  # its only side failed
    assert by_name(report["skipped"])["02-01-03-02-01-01-01.mp4"].startswith("undecodable")
    assert clips.loc["01-01-03-02-01-01-01", ["has_video", "has_audio"]].tolist() == [1, 1]


def test_a_03_of_another_duration_stays_its_own_clip_with_a_note(altered):
    report, clips, calls = altered
    assert clips.loc["03-01-04-02-01-01-01", ["has_video", "has_audio"]].tolist() == [0, 1]
    assert clips.loc["03-01-04-02-01-01-01", "duration_s"] == pytest.approx(0.6)
    assert clips.loc["01-01-04-02-01-01-01", "duration_s"] == pytest.approx(1.2, abs=0.05)
    assert calls["read_track 01"] == 1  # that 01's own track, the only one decoded
    assert calls["read_wav 03"] == RECORDINGS
    note = next(n for n in report["notes"] if n.startswith("1 audio-only (03) wavs with an 01"))
    assert note.endswith(f"{ravdess.SAME_AUDIO_TOLERANCE_S} s")
    inputs = report["inputs"]
    assert inputs["unaccounted"] == []
    assert inputs["files"] == inputs["used"] + inputs["skipped"] + inputs["ignored"]


def test_without_01_files_every_02_and_03_is_a_clip_as_named(raw, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root, ignore=shutil.ignore_patterns("01-*"))
    notes: list[str] = []
    found = ravdess.sources(root, ProblemLog("skip"), notes)
    assert found.covered == {} and notes == []
    assert len(found.clips) == 2 * RECORDINGS
    for clip in found.clips:
        own = (
            root
            / f"Actor_{clip.actor:02d}"
            / (clip.clip_id + (".mp4" if clip.clip_id[:2] == "02" else ".wav"))
        )
        assert (clip.video, clip.audio) == ((own, None) if own.suffix == ".mp4" else (None, own))


def test_a_03_of_a_01_without_audio_stays_its_own_clip(raw, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    a1 = root / A1
    shutil.copy(a1 / "02-01-05-02-01-01-01.mp4", a1 / "01-01-05-02-01-01-01.mp4")  # no track
    notes: list[str] = []
    found = ravdess.sources(root, ProblemLog("skip"), notes)
    clips = {c.clip_id: c for c in found.clips}
    assert clips["01-01-05-02-01-01-01"].audio == a1 / "01-01-05-02-01-01-01.mp4"
    assert clips["03-01-05-02-01-01-01"].audio == a1 / "03-01-05-02-01-01-01.wav"
    assert clips["01-01-01-01-01-01-01"].audio == a1 / "03-01-01-01-01-01-01.wav"  # the others
    assert len(found.clips) == RECORDINGS + 1
    assert "1 whose 01 file has no audio stream (or declares no duration)" in " ".join(notes)
    assert set(found.covered) == set(root.rglob("02-*.mp4"))
