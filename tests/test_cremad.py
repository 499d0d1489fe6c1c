"""CREMA-D: the published name table, the synthetic look-alike, pairing by name, downloads."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from affectpipe.config import ConfigError
from affectpipe.data import cremad, fetch, media
from affectpipe.data.labels import EMOTIONS
from affectpipe.data.perceived import SUMMARY, read_summary
from affectpipe.data.synthetic.cremad import shown
from affectpipe.problems import InputProblem, ProblemLog
from tests.data_configs import config
from tests.test_fetch import serve

TINY = {
    "actors": 2,
    "first_actor": 1001,
    "sentences": ["DFA", "IEO"],
    "ieo_levels": ["LO", "HI"],
    "duration_s": 1.2,
    "fps": 15,
    "width": 64,
    "height": 48,
    "sample_rate": 16000,
    "quiet_actors": [1002],  # soft speech, as real quiet actors: preprocessing must keep it
}
PRE = {"n_frames": 8, "frame_size": 32, "folds": {"folds": 2, "test_fold": 0, "val_fold": -1}}


def download_config(**changes) -> cremad.DownloadConfig:
    return config(cremad.DownloadConfig, "download.cremad", **changes)


def preprocess_config(**changes) -> cremad.PreprocessConfig:
    return config(cremad.PreprocessConfig, "preprocess.cremad", **{**PRE, **changes})


N_CLIPS = 2 * (6 + 1 + 5 * 2)  # per actor: DFA 6 x XX; IEO neutral XX + 5 emotions x 2 levels


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("cremad") / "raw"
    cremad.download(download_config(synthetic=TINY), out)
    return out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1001_DFA_ANG_XX.wav", (1001, "DFA", "angry", "XX")),
        ("1091_IEO_HAP_HI.flv", (1091, "IEO", "happy", "HI")),
        ("1045_WSI_NEU_XX.wav", (1045, "WSI", "neutral", "XX")),
        ("1002_IEO_SAD_LO.wav", (1002, "IEO", "sad", "LO")),
        ("1010_TSI_FEA_XX.flv", (1010, "TSI", "fearful", "XX")),
        ("1020_ITS_DIS_MD.wav", (1020, "ITS", "disgust", "MD")),
        # the release spells the unspecified level once with a single letter
        ("1076_MTI_SAD_X.wav", (1076, "MTI", "sad", "XX")),
    ],
)
def test_parser_follows_the_published_code_table(name, expected):
    n = cremad.parse_name(name)
    assert (n.actor, n.sentence, EMOTIONS[n.emotion], n.level) == expected
    assert n.stem == "_".join([name[:12], n.level])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("03-01-01-01-01-01-01.wav", "name is not CREMA-D"),
        ("1000_DFA_ANG_XX.wav", "actor 1000 is not a CREMA-D actor"),
        ("1001_ABC_ANG_XX.wav", "sentence 'ABC'"),
        ("1001_DFA_SUR_XX.wav", "emotion 'SUR'"),
        ("1001_DFA_ANG_ZZ.wav", "level 'ZZ'"),
        ("1001_DFA_ANG_Y.wav", "level 'Y'"),
        ("1001_DFA_ANG_XXX.wav", "name is not CREMA-D"),
    ],
)
def test_names_that_do_not_parse_say_why(name, message):
    with pytest.raises(InputProblem, match=message):
        cremad.parse_name(name)


def test_synthetic_layout_rates_and_manifest(raw):
    manifest = pd.read_csv(raw / "manifest.csv")
    assert len(manifest) == 2 * N_CLIPS + 1 and SUMMARY in set(manifest.path)
    assert "VideoFlash/1002_IEO_ANG_HI.flv" in set(manifest.path)
    assert "AudioWAV/1001_IEO_NEU_XX.wav" in set(manifest.path)
    assert sf.info(raw / "AudioWAV" / "1001_DFA_ANG_XX.wav").samplerate == 16000
    assert media.has_audio_track(raw / "VideoFlash" / "1001_DFA_ANG_XX.flv")


def test_synthetic_ratings_parse_and_follow_what_was_rendered(raw, tmp_path):
    votes = read_summary(raw / SUMMARY, ProblemLog("strict"))  # the real table's reader
    plan = shown(download_config(synthetic=TINY).synthetic)
    assert set(votes) == set(plan) and len(plan) == N_CLIPS
    apart = {stem for stem, (face, voice) in plan.items() if face != voice}
    assert 0 < len(apart) < N_CLIPS  # incongruent_fraction of params.yaml (0.2)
    for mode, i in (("face", 0), ("voice", 1)):  # raters mostly name what each modality shows
        hits = [plan[stem][i] in v[mode].emotions for stem, v in votes.items()]
        assert np.mean(hits) > 0.7, mode
    # a clip rendered with face and voice apart differs from its congruent rendering, and only it
    same = tmp_path / "same"
    cremad.download(download_config(synthetic=TINY | {"incongruent_fraction": 0.0}), same)
    for stem in plan:
        changed = any(
            (raw / d / f"{stem}{x}").read_bytes() != (same / d / f"{stem}{x}").read_bytes()
            for d, x in (("AudioWAV", ".wav"), ("VideoFlash", ".flv"))
        )
        assert changed == (stem in apart), stem


def test_preprocess_pairs_flv_and_wav_by_name(raw, tmp_path):
    report = cremad.preprocess(preprocess_config(), raw, tmp_path, seed=0)
    clips = pd.read_csv(tmp_path / "clips.csv")
    assert len(clips) == N_CLIPS and report["skipped"] == []
    perceived = pd.read_csv(tmp_path / "perceived.csv")
    assert len(perceived) == N_CLIPS == sum(report["perceived"]["groups"].values())
    assert report["perceived"]["groups"]["incongruent"] > 0
    assert set(perceived.fold) == {0, 1}
    assert (clips.has_video == 1).all() and (clips.has_audio == 1).all()
    assert (clips.groupby("fold").emotion.nunique() == 6).all()
    assert set(clips.emotion_name) == {"neutral", "happy", "sad", "angry", "fearful", "disgust"}
    assert set(clips.intensity) == {"low", "high", "unspecified"}
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    for split in ("train", "test"):
        assert set(pairs[pairs.split == split].kind) == {"congruent", "easy", "hard"}
    by_id = clips.set_index("clip_id")
    hard = pairs[pairs.kind == "hard"]
    assert (
        by_id.loc[hard.face_clip].statement.values == by_id.loc[hard.voice_clip].statement.values
    ).all()


def test_files_not_names_decide_what_is_kept_of_a_clip(raw, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    wav, flv = raw / "AudioWAV" / "1001_DFA_NEU_XX.wav", raw / "VideoFlash" / "1001_DFA_NEU_XX.flv"
    # a clip users report broken whose files are fine is kept whole
    shutil.copy(wav, root / "AudioWAV" / "1076_MTI_NEU_XX.wav")
    shutil.copy(flv, root / "VideoFlash" / "1076_MTI_NEU_XX.flv")
    # a good voice with a truncated video keeps its voice
    shutil.copy(wav, root / "AudioWAV" / "1064_TIE_SAD_XX.wav")
    (root / "VideoFlash" / "1064_TIE_SAD_XX.flv").write_bytes(flv.read_bytes()[:300])
    # a good video with an all-zero wav keeps its face
    sf.write(root / "AudioWAV" / "1064_IEO_DIS_MD.wav", np.zeros(16000, np.float32), 16000)
    shutil.copy(flv, root / "VideoFlash" / "1064_IEO_DIS_MD.flv")
    # the level spelled with one letter pairs with the usual spelling of the other file
    shutil.copy(wav, root / "AudioWAV" / "1076_MTI_SAD_X.wav")
    shutil.copy(flv, root / "VideoFlash" / "1076_MTI_SAD_XX.flv")
    report = cremad.preprocess(preprocess_config(), root, tmp_path / "out", seed=0)
    skipped = {s["path"].split("/")[-1]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"1064_TIE_SAD_XX.flv", "1064_IEO_DIS_MD.wav"}
    assert skipped["1064_IEO_DIS_MD.wav"].startswith("no speech: 0.00 s of frames")
    clips = pd.read_csv(tmp_path / "out" / "clips.csv").set_index("clip_id")
    sides = ["has_video", "has_audio"]
    assert clips.loc["1076_MTI_NEU_XX", sides].tolist() == [1, 1]
    assert clips.loc["1064_TIE_SAD_XX", sides].tolist() == [0, 1]
    assert clips.loc["1064_TIE_SAD_XX", "audio_path"] == "audio/1064_TIE_SAD_XX.wav"
    assert clips.loc["1064_IEO_DIS_MD", sides].tolist() == [1, 0]
    assert clips.loc["1064_IEO_DIS_MD", "frames_path"] == "frames/1064_IEO_DIS_MD.npy"
    assert clips.loc["1076_MTI_SAD_XX", sides + ["intensity"]].tolist() == [1, 1, "unspecified"]
    pairs = pd.read_csv(tmp_path / "out" / "pairs.csv")
    one_sided = {"1064_TIE_SAD_XX", "1064_IEO_DIS_MD"}
    assert not one_sided & (set(pairs.face_clip) | set(pairs.voice_clip))
    inputs = report["inputs"]  # a file with one bad side is still used by its other side
    assert inputs["unaccounted"] == [] and inputs["skipped"] == 2
    assert inputs["files"] == inputs["used"] + inputs["skipped"] + inputs["ignored"]


def test_every_raw_file_is_accounted_for_with_a_reason(raw, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    shutil.copy(root / "AudioWAV" / "1001_DFA_NEU_XX.wav", root / "VideoFlash" / "1001.wav")
    shutil.copy(root / "AudioWAV" / "1001_DFA_NEU_XX.wav", root / "1001_DFA_NEU_XX.wav")
    (root / "AudioMP3").mkdir()
    (root / "AudioMP3" / "1001_DFA_NEU_XX.mp3").write_bytes(b"x")
    (root / "AudioWAV" / "Thumbs.db").write_bytes(b"\0" * 16)
    report = cremad.preprocess(preprocess_config(), root, tmp_path / "out", seed=0)
    inputs = report["inputs"]
    ignored = {Path(i["path"]).relative_to(root).as_posix(): i["reason"]
               for i in inputs["ignored_files"]}  # fmt: skip
    read = "not read: the clips are read from AudioWAV/ and VideoFlash/"
    assert ignored == {
        "VideoFlash/1001.wav": "not a .flv file, the only kind VideoFlash/ holds",
        "AudioWAV/Thumbs.db": "not a .wav file, the only kind AudioWAV/ holds",
        "1001_DFA_NEU_XX.wav": read,
        "AudioMP3/1001_DFA_NEU_XX.mp3": read,
        "manifest.csv": "the download's record of the files it took (manifest.csv)",
    }
    assert inputs["unaccounted"] == [] and inputs["skipped"] == 0
    assert inputs["used"] == len(list(raw.glob("*/*.*")))  # the media and the ratings table
    assert inputs["files"] == inputs["used"] + inputs["ignored"]


def test_a_clip_spelled_two_ways_is_reported_not_overwritten(raw, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    shutil.copy(root / "AudioWAV" / "1001_DFA_NEU_XX.wav", root / "AudioWAV" / "1001_DFA_NEU_X.wav")
    log = ProblemLog("skip")
    out = cremad.sources(root, log, [])
    (problem,) = log.to_json()
    assert problem["reason"].startswith("the same clip as 1001_DFA_NEU_X")
    assert sum(s.clip_id == "1001_DFA_NEU_XX" for s in out) == 1


def test_files_in_a_symlinked_folder_are_accounted_for_as_read(raw, tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    (root / "AudioWAV").symlink_to(raw / "AudioWAV", target_is_directory=True)
    shutil.copytree(raw / "VideoFlash", root / "VideoFlash")
    report = cremad.preprocess(preprocess_config(), root, tmp_path / "out", seed=0)
    inputs = report["inputs"]
    n_media = len(list(raw.glob("AudioWAV/*"))) + len(list(raw.glob("VideoFlash/*")))
    assert inputs["unaccounted"] == [] and inputs["used"] == n_media
    assert inputs["files"] == inputs["used"] + inputs["skipped"] + inputs["ignored"]


def test_unexpected_rate_and_a_missing_wav_are_recorded(raw, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    data, _ = sf.read(root / "AudioWAV" / "1001_DFA_ANG_XX.wav", dtype="float32")
    sf.write(root / "AudioWAV" / "1001_DFA_ANG_XX.wav", np.repeat(data, 3), 48000)
    (root / "AudioWAV" / "1001_DFA_HAP_XX.wav").unlink()
    (root / "AudioWAV" / "notes.wav").write_bytes(b"x")
    report = cremad.preprocess(preprocess_config(), root, tmp_path / "out", seed=0)
    assert report["resampled"][0]["rate"] == 48000
    assert report["resampled"][0]["expected"] == 16000
    assert any("flv's own track" in n for n in report["notes"])
    assert report["skipped"][0]["reason"].startswith("name is not CREMA-D")
    clips = pd.read_csv(tmp_path / "out" / "clips.csv").set_index("clip_id")
    assert clips.loc["1001_DFA_HAP_XX", "has_audio"] == 1


def test_preprocess_is_deterministic(raw, tmp_path):
    for name in ("a", "b"):
        cremad.preprocess(preprocess_config(), raw, tmp_path / name, seed=0)
    for name in (
        "clips.csv",
        "pairs.csv",
        "report.json",
        "audio/1001_DFA_ANG_XX.wav",
        "frames/1001_DFA_ANG_XX.npy",
    ):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_github_download_follows_lfs_pointers_and_verifies(raw, tmp_path):
    repo, ref = "CheyneyComputerScience/CREMA-D", "master"
    files = {
        f"{d}/{n}": (raw / d / n).read_bytes()
        for d, n in (
            ("AudioWAV", "1001_DFA_ANG_XX.wav"),
            ("VideoFlash", "1001_DFA_ANG_XX.flv"),
            ("AudioWAV", "1002_DFA_ANG_XX.wav"),
        )
    }
    ratings = (raw / SUMMARY).read_bytes()  # a plain git file: raw_url serves it as it is
    tree = {
        "truncated": False,
        "tree": [{"path": "README.md", "type": "blob"}, {"path": SUMMARY, "type": "blob"}]
        + [{"path": p, "type": "blob"} for p in files],
    }
    routes = {f"/repos/{repo}/git/trees/{ref}": json.dumps(tree).encode()}
    routes[f"/raw/{repo}/{ref}/{SUMMARY}"] = ratings
    for path, body in files.items():
        pointer = (
            f"version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{hashlib.sha256(body).hexdigest()}\nsize {len(body)}\n"
        )
        routes[f"/raw/{repo}/{ref}/{path}"] = pointer.encode()
        routes[f"/media/{repo}/{ref}/{path}"] = body
    with serve(routes) as (url, _):
        cfg = {
            "source": "github",
            "api_url": url,
            "raw_url": f"{url}/raw",
            "media_url": f"{url}/media",
            "actors": [1001],
        }
        assert cremad.download(download_config(**cfg), tmp_path / "raw") == []
        manifest = pd.read_csv(tmp_path / "raw" / "manifest.csv")
        assert sorted(manifest.path) == [
            "AudioWAV/1001_DFA_ANG_XX.wav",
            "VideoFlash/1001_DFA_ANG_XX.flv",
            SUMMARY,
        ]
        assert (tmp_path / "raw" / SUMMARY).read_bytes() == ratings
        tree["tree"] = [e for e in tree["tree"] if e["path"] != SUMMARY]
        routes[f"/repos/{repo}/git/trees/{ref}"] = json.dumps(tree).encode()
        notes = cremad.download(download_config(**cfg), tmp_path / "unrated")
        assert notes and f"the github source has no {SUMMARY}" in notes[0]
        routes[f"/media/{repo}/{ref}/AudioWAV/1001_DFA_ANG_XX.wav"] = b"corrupted"
        with pytest.raises(fetch.DownloadError, match="1001_DFA_ANG_XX.wav.part: size 9 bytes"):
            cremad.download(download_config(**cfg), tmp_path / "raw2")


def test_unknown_source_and_folders_fail_by_name():
    with pytest.raises(ConfigError, match="source': Input should be 'synthetic', 'github' or"):
        download_config(source="kaggle")
    with pytest.raises(ConfigError, match="folders.1': Input should be 'AudioWAV' or 'VideoFlash'"):
        download_config(folders=["AudioWAV", "Video"])


def test_folder_source_takes_the_configured_folders(raw, tmp_path):
    cremad.download(download_config(source="folder", path=str(raw), folders=["AudioWAV"]), tmp_path)
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert len(manifest) == N_CLIPS + 1 and SUMMARY in set(manifest.path)
    assert manifest.path.str.startswith("AudioWAV/").sum() == N_CLIPS
    with pytest.raises(InputProblem, match=r"no CREMA-D media \(VideoFlash/\) in this folder"):
        cremad.download(
            download_config(source="folder", path=str(tmp_path), folders=["VideoFlash"]),
            tmp_path / "again",
        )


def test_a_folder_without_ratings_downloads_and_preprocesses_with_a_recorded_skip(raw, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(raw / "AudioWAV", src / "AudioWAV")
    shutil.copytree(raw / "VideoFlash", src / "VideoFlash")
    notes = cremad.download(download_config(source="folder", path=str(src)), tmp_path / "raw")
    assert notes == [
        f"the folder source has no {SUMMARY}: preprocessing records that, and what needs it is "
        "skipped"
    ]
    report = cremad.preprocess(preprocess_config(), tmp_path / "raw", tmp_path / "out", seed=0)
    assert report["perceived"] == {
        "skipped": f"no {SUMMARY} in {tmp_path / 'raw'}: no perceived evaluation set"
    }
    assert pd.read_csv(tmp_path / "out" / "perceived.csv").empty


def test_lfs_pointer_is_parsed_and_plain_text_is_not():
    sha = "a" * 64
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize 42\n"
    assert cremad.lfs_pointer(text) == (sha, 42)
    assert cremad.lfs_pointer("RIFF....WAVE") is None
