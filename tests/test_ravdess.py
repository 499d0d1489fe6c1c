"""RAVDESS: the published name table, the synthetic look-alike, preprocessing and bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from affectpipe.config import ConfigError
from affectpipe.data import media, ravdess
from affectpipe.data.labels import EMOTIONS
from affectpipe.problems import InputProblem
from tests.data_configs import config
from tests.test_av_media import cut_with_index_in_front, lie_about_length
from tests.test_fetch import make_zip, serve

TINY = {
    "actors": 2,
    "statements": [1, 2],
    "repetitions": 1,
    "intensities": [2],
    "modalities": [1, 2, 3],
    "duration_s": 1.2,
    "fps": 15,
    "width": 64,
    "height": 48,
    "sample_rate": 48000,
    "quiet_actors": [2],  # soft speech, as real quiet actors: preprocessing must keep it
}
PRE = {"n_frames": 8, "frame_size": 32, "folds": {"folds": 2, "test_fold": 0, "val_fold": -1}}


def download_config(**changes) -> ravdess.DownloadConfig:
    return config(ravdess.DownloadConfig, "download.ravdess", **changes)


def preprocess_config(**changes) -> ravdess.PreprocessConfig:
    return config(ravdess.PreprocessConfig, "preprocess.ravdess", **{**PRE, **changes})


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("ravdess") / "raw"
    ravdess.download(download_config(synthetic=TINY), out)
    return out


@pytest.fixture(scope="module")
def processed(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("ravdess") / "processed"
    report = ravdess.preprocess(preprocess_config(), raw, out, seed=0)
    return out, report


# The published code table (Livingstone & Russo 2018): MM-VC-EE-II-SS-RR-AA.
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("01-01-01-01-01-01-01.mp4", (1, 1, "neutral", 1, 1, 1, 1)),
        ("02-01-06-01-02-02-12.mp4", (2, 1, "fearful", 1, 2, 2, 12)),
        ("03-01-08-02-02-01-24.wav", (3, 1, "surprised", 2, 2, 1, 24)),
        ("03-02-05-02-01-01-07.wav", (3, 2, "angry", 2, 1, 1, 7)),
        ("01-01-02-02-01-02-03.mp4", (1, 1, "calm", 2, 1, 2, 3)),
        ("01-01-07-01-01-01-05.mp4", (1, 1, "disgust", 1, 1, 1, 5)),
    ],
)
def test_parser_follows_the_published_code_table(name, expected):
    n = ravdess.parse_name(name)
    got = (
        n.modality,
        n.vocal_channel,
        EMOTIONS[n.emotion],
        n.intensity,
        n.statement,
        n.repetition,
        n.actor,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("1001_DFA_ANG_XX.wav", "name is not RAVDESS"),
        ("04-01-01-01-01-01-01.mp4", "modality code 04"),
        ("01-01-09-01-01-01-01.mp4", "emotion code 09"),
        ("01-01-03-03-01-01-01.mp4", "intensity code 03"),
        ("01-01-03-01-03-01-01.mp4", "statement code 03"),
        ("01-01-03-01-01-01-25.mp4", "actor code 25"),
        ("01-01-01-02-01-01-01.mp4", "neutral .* has no strong intensity"),
        ("03-01-03-01-01-01-01.mp4", r"audio-only file should be .wav"),
    ],
)
def test_names_that_do_not_parse_say_why(name, message):
    with pytest.raises(InputProblem, match=message):
        ravdess.parse_name(name)


def test_synthetic_layout_and_manifest(raw):
    manifest = pd.read_csv(raw / "manifest.csv")
    files = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file())
    assert sorted(manifest.path) == [f for f in files if f != "manifest.csv"]
    # 2 actors x 2 statements x (neutral + 7 strong) x 3 modalities
    assert len(manifest) == 2 * 2 * 8 * 3
    assert "Actor_02/03-01-05-02-01-01-02.wav" in set(manifest.path)
    assert sf.info(raw / "Actor_01" / "03-01-01-01-01-01-01.wav").samplerate == 48000
    assert not media.has_audio_track(raw / "Actor_01" / "02-01-01-01-01-01-01.mp4")


def test_synthetic_download_is_byte_identical_across_runs(raw, tmp_path):
    tiny = dict(TINY, actors=1, statements=[1], quiet_actors=[])
    ravdess.download(download_config(synthetic=tiny), tmp_path / "a")
    ravdess.download(download_config(synthetic=tiny), tmp_path / "b")
    assert (tmp_path / "a/manifest.csv").read_bytes() == (tmp_path / "b/manifest.csv").read_bytes()
    ours = pd.read_csv(tmp_path / "a/manifest.csv").set_index("path").sha256
    full = pd.read_csv(raw / "manifest.csv").set_index("path").sha256
    assert (full.loc[ours.index] == ours).all()  # actor 1 does not depend on the set's size


def test_mp4_track_matches_the_wav_of_the_same_performance(raw):
    track = media.read_track(raw / "Actor_01" / "01-01-05-02-01-01-01.mp4", 16000).samples
    wav = media.read_wav(raw / "Actor_01" / "03-01-05-02-01-01-01.wav", 16000).samples
    n = min(len(track), len(wav))
    assert abs(len(track) - len(wav)) < 0.05 * len(wav)
    assert np.corrcoef(track[:n], wav[:n])[0, 1] > 0.9


def test_preprocess_writes_the_design_contract(processed):
    out, report = processed
    clips = pd.read_csv(out / "clips.csv")
    assert list(clips.columns) == [
        "clip_id",
        "dataset",
        "actor",
        "emotion",
        "emotion_name",
        "intensity",
        "statement",
        "repetition",
        "fold",
        "split",
        "has_video",
        "has_audio",
        "frames_path",
        "audio_path",
        "duration_s",
        "loudness_db",
    ]
    # one clip per recording: its 02 and 03 files are the 01 clip's (test_one_clip_per_recording)
    assert len(clips) == 2 * 2 * 8 and report["skipped"] == [] and report["truncated"] == []
    av = clips[clips.clip_id.str.startswith("01-")]
    assert len(av) == len(clips) and (av.has_video == 1).all() and (av.has_audio == 1).all()
    frames = np.load(out / av.frames_path.iloc[0])
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    audio, rate = sf.read(out / av.audio_path.iloc[0], dtype="float32")
    assert rate == 16000 and audio.ndim == 1
    assert json.loads((out / "report.json").read_text())["clips"] == len(clips)


def test_quiet_actor_soft_speech_is_kept(processed):
    out, report = processed
    clips = pd.read_csv(out / "clips.csv")
    quiet = clips[(clips.actor == 2) & (clips.has_audio == 1)]
    loud = clips[(clips.actor == 1) & (clips.has_audio == 1)]
    assert len(quiet) == len(loud) == 2 * 8  # every voice of both actors, once
    # below the old whole-file RMS threshold (-60 dBFS), yet speech: kept
    assert quiet.loudness_db.median() < -60 < loud.loudness_db.min()


def test_every_fold_holds_all_eight_emotions_and_every_split_all_pair_kinds(processed):
    out, report = processed
    clips = pd.read_csv(out / "clips.csv")
    assert (clips.groupby("fold").emotion.nunique() == 8).all()
    assert (clips.groupby("actor").fold.nunique() == 1).all()
    pairs = pd.read_csv(out / "pairs.csv")
    for split in ("train", "test"):
        assert set(pairs[pairs.split == split].kind) == {"congruent", "easy", "hard"}
    assert report["crop"] == "face" and report["center_fallback"] == []
    assert report["faces"]["method"] == "face" and report["faces"]["low_coverage"] == {}
    assert report["faces"]["mean_coverage"] > 0.9  # the synthetic faces are found


def test_video_only_clips_are_never_paired(processed):
    out, _ = processed
    pairs = pd.read_csv(out / "pairs.csv")
    used = set(pairs.face_clip) | set(pairs.voice_clip)
    assert all(c.startswith("01-") for c in used)


def test_preprocess_is_deterministic(raw, processed, tmp_path):
    out, _ = processed
    ravdess.preprocess(preprocess_config(), raw, tmp_path, seed=0)
    for name in ("clips.csv", "pairs.csv", "report.json"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    for folder in ("frames", "audio"):
        some = sorted((out / folder).iterdir())[0].name
        assert (tmp_path / folder / some).read_bytes() == (out / folder / some).read_bytes()


@pytest.fixture
def broken_raw(raw, tmp_path):
    """A copy of the tiny set with one of each bad input."""
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    a1 = root / "Actor_01"
    # an audio-video mp4 with no audio track (its 02 twin renamed to 01)
    (a1 / "01-01-03-02-01-01-01.mp4").unlink()
    shutil.copy(a1 / "02-01-03-02-01-01-01.mp4", a1 / "01-01-03-02-01-01-01.mp4")
    sf.write(a1 / "03-01-04-02-01-01-01.wav", np.zeros(0, np.float32), 48000)  # zero-length
    sf.write(a1 / "03-01-04-02-02-01-01.wav", np.zeros(4800, np.float32), 48000)  # silent
    data, _ = sf.read(a1 / "03-01-05-02-01-01-01.wav", dtype="float32")
    sf.write(a1 / "03-01-05-02-01-01-01.wav", data[::2], 24000)  # unexpected rate
    cut = (a1 / "01-01-06-02-01-01-01.mp4").read_bytes()
    (a1 / "01-01-06-02-01-01-01.mp4").write_bytes(cut[: len(cut) // 3])  # truncated
    media.write_video(a1 / "02-01-07-02-01-01-01.mp4", np.zeros((4, 48, 64, 3), np.uint8), 15)
    (a1 / "holiday.mp4").write_bytes(b"not ravdess")
    (a1 / "Thumbs.db").write_bytes(b"\0" * 16)  # strays a release folder picks up
    (root / "notes.txt").write_text("x")
    shutil.copy(a1 / "03-01-05-02-01-01-01.wav", a1 / "03-02-05-02-01-01-01.wav")  # a song
    return root


def test_every_bad_input_is_recorded_with_its_reason(broken_raw, tmp_path):
    report = ravdess.preprocess(preprocess_config(), broken_raw, tmp_path, seed=0)
    reasons = {s["path"].split("/")[-1]: s["reason"] for s in report["skipped"]}
    assert reasons["01-01-03-02-01-01-01.mp4"] == "no audio track in the container"
    assert reasons["03-01-04-02-01-01-01.wav"] == "empty audio (0 samples)"
    assert reasons["03-01-04-02-02-01-01.wav"].startswith("no speech: 0.00 s of frames")
    assert reasons["01-01-06-02-01-01-01.mp4"].startswith("undecodable")
    assert reasons["02-01-07-02-01-01-01.mp4"] == "4 frames, fewer than the 8 requested"
    assert reasons["holiday.mp4"].startswith("name is not RAVDESS")
    assert [r["path"].split("/")[-1] for r in report["resampled"]] == ["03-01-05-02-01-01-01.wav"]
    clips = pd.read_csv(tmp_path / "clips.csv").set_index("clip_id")
    # the mp4 without a track keeps its face, and its wav is a clip of its own; the resampled
    # wav (of the 01 track's duration) is its 01 clip's audio, at 16 kHz
    assert clips.loc["01-01-03-02-01-01-01", ["has_video", "has_audio"]].tolist() == [1, 0]
    assert clips.loc["03-01-03-02-01-01-01", ["has_video", "has_audio"]].tolist() == [0, 1]
    assert clips.loc["01-01-05-02-01-01-01", "has_audio"] == 1
    assert "03-01-05-02-01-01-01" not in clips.index
    assert "03-01-04-02-01-01-01" not in clips.index
    # the truncated 01 and the 4-frame 02 differ from their twins: clips of their own
    assert "02-01-06-02-01-01-01" in clips.index and "02-01-03-02-01-01-01" not in clips.index
    kept = "2 video-only (02) files with an 01 file kept as clips of their own: 2 whose video"
    assert any(n.startswith(kept) for n in report["notes"])
    inputs = report["inputs"]  # every file: used, skipped or ignored with its reason
    ignored = {i["path"].split("/")[-1]: i["reason"] for i in inputs["ignored_files"]}
    covered = {n: r for n, r in ignored.items() if r.startswith("same video stream as 01-")}
    assert len(covered) == 2 * 2 * 8 - 2  # every 02 but the two that differ from their 01
    assert {n: r for n, r in ignored.items() if n not in covered} == {
        "Thumbs.db": "not a RAVDESS media file (.mp4 or .wav)",
        "notes.txt": "not a RAVDESS media file (.mp4 or .wav)",
        "03-02-05-02-01-01-01.wav": "song (vocal channel 02): the pipeline reads speech",
        "manifest.csv": "the download's record of the files it took (manifest.csv)",
    }
    assert inputs["unaccounted"] == []
    # the zero-length and the silent wav, the truncated and the 4-frame mp4, holiday.mp4 (the
    # mp4 without an audio track gave its frames: used)
    assert inputs["skipped"] == 5
    assert inputs["files"] == sum(1 for p in broken_raw.rglob("*") if p.is_file())
    assert inputs["files"] == inputs["used"] + inputs["skipped"] + inputs["ignored"]


def test_truncated_media_are_kept_with_their_note_and_cost_no_neighbour(raw, processed, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    a1 = root / "Actor_01"
    lie_about_length(a1 / "03-01-05-02-01-01-01.wav", 10)  # the header claims 10x the data
    mp4 = a1 / "01-01-06-02-01-01-01.mp4"
    cut_with_index_in_front(mp4, mp4, keep=0.6)  # index in front, the tail of the data lost
    (a1 / "03-01-06-02-01-01-01.wav").unlink()  # so the 01's own (cut) track is its audio
    report = ravdess.preprocess(preprocess_config(), root, tmp_path / "out", seed=0)
    notes = {t["path"].split("/")[-1]: t["note"] for t in report["truncated"]}
    assert set(notes) == {"03-01-05-02-01-01-01.wav", "01-01-06-02-01-01-01.mp4"}
    assert notes["03-01-05-02-01-01-01.wav"] == (
        "truncated: header declares 12.00 s, 1.20 s of audio present (kept)"
    )
    assert notes["01-01-06-02-01-01-01.mp4"].startswith("truncated: header declares 1.2")
    assert report["skipped"] == [] and report["inputs"]["unaccounted"] == []
    clips = pd.read_csv(tmp_path / "out" / "clips.csv").set_index("clip_id")
    expected = pd.read_csv(processed[0] / "clips.csv").set_index("clip_id")
    # every clip kept, the damaged ones too: the cut 01 no longer holds its 02's video stream,
    # and the wav that declares 10x its length is not the 01 track's: both are clips of their own
    apart = ["02-01-06-02-01-01-01", "03-01-05-02-01-01-01"]
    assert list(clips.index) == sorted([*expected.index, *apart])
    assert clips.loc["01-01-06-02-01-01-01", ["has_video", "has_audio"]].tolist() == [1, 1]
    assert clips.loc["01-01-06-02-01-01-01", "duration_s"] < 1.0
    assert clips.loc["03-01-05-02-01-01-01", "duration_s"] == pytest.approx(1.2)


def test_clips_in_a_symlinked_actor_folder_are_used(raw, processed, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root, ignore=shutil.ignore_patterns("Actor_02"))
    (root / "Actor_02").symlink_to(raw / "Actor_02", target_is_directory=True)
    report = ravdess.preprocess(preprocess_config(), root, tmp_path / "out", seed=0)
    inputs = report["inputs"]
    assert inputs["unaccounted"] == [] and report["skipped"] == []
    # 01 mp4 and 03 wav read, 02 mp4 covered by its 01 clip
    assert inputs["used"] == sum(1 for p in raw.rglob("*") if p.name[:2] in ("01", "03"))
    assert inputs["ignored"] == sum(1 for p in raw.rglob("02-*.mp4")) + 1  # + manifest.csv
    clips = pd.read_csv(tmp_path / "out" / "clips.csv")
    assert len(clips) == len(pd.read_csv(processed[0] / "clips.csv"))
    assert set(clips.actor) == {1, 2}


def test_an_unforeseen_failure_on_one_clip_is_its_skip_and_costs_no_other(
    raw, processed, tmp_path, monkeypatch
):
    from affectpipe.data import av

    bad = "03-01-04-02-01-01-01.wav"
    read_wav, crop_clip, calls = av.media.read_wav, av.crop_clip, []

    def failing_read(path, rate):
        if path.name == bad:
            raise OverflowError("a decoder's own bug")
        return read_wav(path, rate)

    def failing_first_crop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ZeroDivisionError("a detector's own bug")
        return crop_clip(*args, **kwargs)

    monkeypatch.setattr(av.media, "read_wav", failing_read)
    monkeypatch.setattr(av, "crop_clip", failing_first_crop)
    report = ravdess.preprocess(preprocess_config(), raw, tmp_path, seed=0)
    reasons = {s["path"].split("/")[-1]: s["reason"] for s in report["skipped"]}
    assert reasons[bad] == "unexpected OverflowError: a decoder's own bug"
    [crashed] = [n for n, r in reasons.items() if "ZeroDivisionError" in r]
    assert crashed.endswith(".mp4")
    clips = pd.read_csv(tmp_path / "clips.csv").set_index("clip_id")
    expected = pd.read_csv(processed[0] / "clips.csv")
    # the wav is its 01 clip's audio, the crashed mp4's clip keeps its audio side: none lost
    assert len(clips) == len(expected)
    assert clips.loc["01-01-04-02-01-01-01", ["has_video", "has_audio"]].tolist() == [1, 0]
    assert clips.has_video.sum() == expected.has_video.sum() - 1
    assert clips.has_audio.sum() == expected.has_audio.sum() - 1
    with pytest.raises(InputProblem, match="unexpected OverflowError"):
        ravdess.preprocess(preprocess_config(bad_input="strict"), raw, tmp_path / "s", seed=0)


def test_strict_policy_stops_at_the_first_bad_file(broken_raw, tmp_path):
    with pytest.raises(InputProblem, match=r"holiday.mp4: name is not RAVDESS"):
        ravdess.preprocess(preprocess_config(bad_input="strict"), broken_raw, tmp_path, seed=0)


def test_audio_only_folder_builds_the_audio_side(raw, tmp_path):
    src = tmp_path / "wavs"
    for wav in raw.rglob("03-*.wav"):
        (src / wav.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, src / wav.parent.name / wav.name)
    ravdess.download(download_config(source="folder", path=str(src)), tmp_path / "raw")
    report = ravdess.preprocess(preprocess_config(), tmp_path / "raw", tmp_path / "out", seed=0)
    clips = pd.read_csv(tmp_path / "out" / "clips.csv")
    assert len(clips) == 2 * 2 * 8 and (clips.has_audio == 1).all() and (clips.has_video == 0).all()
    assert any(n.startswith("no video") for n in report["notes"])
    assert report["pairs"] == 0 and len(pd.read_csv(tmp_path / "out" / "pairs.csv")) == 0


def test_folder_source_copies_and_never_modifies_the_source(raw, tmp_path):
    before = {p: p.read_bytes() for p in raw.rglob("*.wav")}
    ravdess.download(download_config(source="folder", path=str(raw), video=False), tmp_path)
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert len(manifest) == 2 * 2 * 8 * 3
    assert before == {p: p.read_bytes() for p in raw.rglob("*.wav")}


def test_a_download_into_an_existing_folder_starts_clean(raw, tmp_path):
    out = tmp_path / "out"
    stale = out / "Actor_99" / "03-01-01-01-01-01-99.wav"
    stale.parent.mkdir(parents=True)
    shutil.copy(next(raw.rglob("03-*.wav")), stale)  # an earlier download's file
    ravdess.download(download_config(source="folder", path=str(raw), video=False), out)
    assert not stale.exists()
    manifest = set(pd.read_csv(out / "manifest.csv").path)
    taken = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert manifest == taken - {"manifest.csv"}


def test_a_folder_sources_other_files_are_named_in_a_note(raw, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(raw / "Actor_01", src / "Actor_01")
    (src / "Actor_01" / "Thumbs.db").write_bytes(b"\0")
    (src / "README.txt").write_text("x")
    notes = ravdess.download(download_config(source="folder", path=str(src)), tmp_path / "out")
    [note] = notes
    assert note.startswith(f"2 files of {src} are not RAVDESS media of its layout")
    assert note.endswith("not taken: Actor_01/Thumbs.db, README.txt")


def test_folder_without_ravdess_media_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputProblem, match="no RAVDESS media"):
        ravdess.download(
            download_config(source="folder", path=str(tmp_path / "empty")), tmp_path / "out"
        )


def test_a_folder_source_without_media_leaves_the_earlier_download(raw, tmp_path):
    out = tmp_path / "out"
    ravdess.download(download_config(source="folder", path=str(raw)), out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputProblem, match="no RAVDESS media"):
        ravdess.download(download_config(source="folder", path=str(tmp_path / "empty")), out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_a_source_folder_inside_the_output_is_refused_and_kept(raw, tmp_path):
    src = tmp_path / "out" / "mine"
    shutil.copytree(raw / "Actor_01", src / "Actor_01")
    with pytest.raises(InputProblem, match="lies inside the download's output"):
        ravdess.download(download_config(source="folder", path=str(src)), tmp_path / "out")
    assert len(list(src.rglob("*.wav"))) == len(list((raw / "Actor_01").glob("*.wav")))


def test_unknown_source_and_keys_fail_by_name():
    with pytest.raises(ConfigError, match="source': Input should be 'synthetic', 'zenodo' or"):
        download_config(source="kaggle")
    with pytest.raises(ConfigError, match="unknown key 'download.ravdess.synthetic.actor'"):
        download_config(synthetic={"actor": 3})
    with pytest.raises(ConfigError, match="download.ravdess.path is empty"):
        download_config(source="folder", path="")


def test_zenodo_download_from_a_local_record(raw, tmp_path):
    """The record API lists zips with md5 checksums; zips hold Actor_XX/ folders."""
    import hashlib

    video = make_zip(
        {f"Actor_01/{p.name}": p.read_bytes() for p in (raw / "Actor_01").glob("0[12]-*.mp4")}
    )
    audio = make_zip(
        {
            f"Actor_{a:02d}/{p.name}": p.read_bytes()
            for a in (1, 2)
            for p in (raw / f"Actor_{a:02d}").glob("03-*.wav")
        }
    )
    blobs = {"Video_Speech_Actor_01.zip": video, "Audio_Speech_Actors_01-24.zip": audio}
    with serve({f"/files/{k}": v for k, v in blobs.items()}) as (url, _):
        record = {
            "files": [
                {
                    "key": k,
                    "size": len(v),
                    "checksum": "md5:" + hashlib.md5(v).hexdigest(),  # noqa: S324
                    "links": {"self": f"{url}/files/{k}"},
                }
                for k, v in blobs.items()
            ]
        }
        with serve({"/api/records/1188976": json.dumps(record).encode()}) as (api, _):
            cfg = {
                "source": "zenodo",
                "url": f"{api}/api/records/1188976",
                "actors": [1],
                "archive_dir": str(tmp_path / "zips"),
            }
            ravdess.download(download_config(**cfg), tmp_path / "raw")
    manifest = pd.read_csv(tmp_path / "raw" / "manifest.csv")
    assert len(manifest) == 2 * 8 * 3  # actor 1 only: 01 + 02 mp4 and 03 wav
    assert all(p.startswith("Actor_01/") for p in manifest.path)
    assert (tmp_path / "zips" / "Audio_Speech_Actors_01-24.zip").exists()
