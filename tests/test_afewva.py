"""AFEW-VA: the reader on the published format, the synthetic generator, splits, bad input."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import pandas as pd
import pytest

from affectpipe.config import ConfigError
from affectpipe.data import afewva
from affectpipe.data.synthetic.afewva import SyntheticAfewvaConfig, write_synthetic_afewva
from affectpipe.problems import InputProblem, ProblemLog
from tests.data_configs import config

TINY = {"actors": 4, "clips_per_actor": 1, "frames_per_clip": 3, "width": 48, "height": 40}
PP = {
    "crop_size": 16,
    "margin": 0.25,
    "bad_input": "skip",
    "workers": 1,
    "split": {"method": "holdout"},
}  # a few tiny actors: too few for 5 folds


def synthetic_config(**changes) -> SyntheticAfewvaConfig:
    return config(SyntheticAfewvaConfig, "download.afewva.synthetic", **{**TINY, **changes})


def download_config(**changes) -> afewva.DownloadConfig:
    return config(afewva.DownloadConfig, "download.afewva", **changes)


LANDMARKS = [[181.4 + i, 170.1 + i] for i in range(68)]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    write_synthetic_afewva(synthetic_config(), root)
    return root


def run_preprocess(raw: Path, tmp_path: Path, policy: str = "skip") -> dict:
    return afewva.preprocess(
        config(afewva.PreprocessConfig, "preprocess.afewva", **{**PP, "bad_input": policy}),
        raw,
        tmp_path / "out",
        seed=0,
    )


def edit_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_reader_accepts_the_published_format_with_float_and_int_labels(tmp_path: Path):
    doc = {
        "actor": "Bruce Campbell",
        "video_id": "001",
        "frames": {
            "00000": {"valence": 0.0, "arousal": 5.0, "landmarks": LANDMARKS},
            "00001": {"valence": -3, "arousal": 10, "landmarks": LANDMARKS},
        },
    }
    path = tmp_path / "001.json"
    path.write_text(json.dumps(doc))
    actor, labels = afewva.read_annotation(path, ProblemLog("strict"))
    assert actor == "Bruce Campbell"
    assert [(lab.frame, lab.valence, lab.arousal) for lab in labels.values()] == [
        (0, 0.0, 0.5),
        (1, -0.3, 1.0),
    ]
    assert labels["00000"].landmarks.shape == (68, 2)


def test_synthetic_generator_is_byte_deterministic(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_synthetic_afewva(synthetic_config(), a)
    write_synthetic_afewva(synthetic_config(), b)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    c = tmp_path / "c"
    write_synthetic_afewva(synthetic_config(seed=1), c)
    assert (a / "001" / "00000.png").read_bytes() != (c / "001" / "00000.png").read_bytes()


def test_synthetic_files_follow_the_afewva_layout(raw: Path):
    clips = sorted(p.name for p in raw.iterdir())
    assert clips == ["001", "002", "003", "004"]
    doc = json.loads((raw / "001" / "001.json").read_text())
    assert set(doc) == {"actor", "video_id", "frames"}
    frame = doc["frames"]["00000"]
    assert -10 <= frame["valence"] <= 10 and len(frame["landmarks"]) == 68
    assert (raw / "001" / "00000.png").exists()


def test_preprocess_writes_crops_table_and_actor_disjoint_splits(raw: Path, tmp_path: Path):
    report = run_preprocess(raw, tmp_path)
    table = pd.read_csv(tmp_path / "out" / "frames.csv", dtype={"clip": str})
    assert len(table) == 12 and report["frames_used"] == 12 and report["skipped"] == []
    assert table.groupby("actor")["split"].nunique().max() == 1
    assert set(table["split"]) == {"train", "val", "test"}
    assert table[["valence", "arousal"]].abs().max().max() <= 1.0
    assert all((tmp_path / "out" / p).exists() for p in table["crop_path"])
    # what predict repeats on a new video, the frames' time scale included
    assert report["settings"] == {"crop_size": PP["crop_size"], "margin": PP["margin"],
                                  "fps": 25.0}  # fmt: skip


def _drop_frame_label(raw: Path) -> None:
    edit_json(raw / "001" / "001.json", lambda d: d["frames"].pop("00001"))


def _drop_png(raw: Path) -> None:
    (raw / "001" / "00001.png").unlink()


def _no_frames_key(raw: Path) -> None:
    edit_json(raw / "001" / "001.json", lambda d: d.pop("frames"))


def _set(key: str, value):
    def corrupt(raw: Path) -> None:
        edit_json(raw / "001" / "001.json", lambda d: d["frames"]["00001"].__setitem__(key, value))

    return corrupt


def _truncate_png(raw: Path) -> None:
    png = raw / "001" / "00001.png"
    png.write_bytes(png.read_bytes()[:40])


def _not_an_image(raw: Path) -> None:
    (raw / "001" / "00001.png").write_text("hello")


def _empty_clip(raw: Path) -> None:
    (raw / "005").mkdir()


def _stray_file(raw: Path) -> None:
    (raw / "notes.txt").write_text("x")


def _huge_valence(raw: Path) -> None:
    _set("valence", 10**400)(raw)  # a 401-digit integer: no float holds it


def _deep_json(raw: Path) -> None:
    path = raw / "001" / "001.json"
    edit_json(path, lambda d: d["frames"]["00001"].__setitem__("valence", "DEEP"))
    path.write_text(path.read_text().replace('"DEEP"', "[" * 100_000 + "]" * 100_000))


def _duplicate_frame_key(raw: Path) -> None:
    path = raw / "001" / "001.json"
    doc = json.loads(path.read_text())
    entry = json.dumps(doc["frames"]["00001"])
    path.write_text(json.dumps(doc).replace('"frames": {', f'"frames": {{"00001": {entry}, ', 1))


def _non_ascii_digit_key(raw: Path) -> None:
    def edit(d):
        d["frames"]["0000\u00b2"] = d["frames"].pop("00001")  # a superscript two: isdigit()

    edit_json(raw / "001" / "001.json", edit)


def _landmarks_moved(dx: float, scale: float = 1.0):
    def corrupt(raw: Path) -> None:
        def edit(d):
            points = d["frames"]["00001"]["landmarks"]
            d["frames"]["00001"]["landmarks"] = [[x * scale + dx, y * scale] for x, y in points]

        edit_json(raw / "001" / "001.json", edit)

    corrupt.__name__ = f"_landmarks_moved_{dx:g}_x{scale:g}"
    return corrupt


def _decompression_bomb(raw: Path) -> None:
    png = raw / "001" / "00001.png"
    data = bytearray(png.read_bytes())  # IHDR claims 20000x10000: PIL refuses at open
    data[16:24] = struct.pack(">II", 20000, 10000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    png.write_bytes(bytes(data))


BAD_INPUTS = [
    (_drop_frame_label, "frame has no usable annotation"),
    (_drop_png, "annotated frame has no PNG"),
    (_no_frames_key, "no 'frames' object"),
    (_set("valence", "high"), "valence is 'high', not a number"),
    (_set("arousal", 11), "arousal 11 outside -10..10"),
    (_set("valence", float("nan")), "valence nan outside -10..10"),
    (_set("landmarks", None), "no landmarks"),
    (_set("landmarks", LANDMARKS[:60]), r"landmarks shape \(60, 2\), expected \(68, 2\)"),
    (_truncate_png, "unreadable image"),
    (_not_an_image, "unreadable image"),
    (_empty_clip, "empty clip folder"),
    (_stray_file, "not an AFEW-VA clip folder"),
    (_huge_valence, r"valence 10+\.\.\. \(401 characters\) outside -10\.\.10"),
    (_deep_json, "JSON nested too deeply"),
    (_duplicate_frame_key, "frame '00001': the key appears more than once"),
    (_non_ascii_digit_key, "not a 5-digit key"),
    (_landmarks_moved(-1000.0), "landmarks outside the 48x40 image"),
    (_landmarks_moved(1e308), r"landmark coordinate 1e\+308 is no pixel position"),
    (_landmarks_moved(0.0, scale=0.01), "landmarks give no usable face box"),
    (_decompression_bomb, "image too large to decode safely"),
    (_set("landmarks", [[10**400, 1.0]] * 68), "landmarks are not pixel numbers"),
]


@pytest.mark.parametrize(
    ("corrupt", "message"), BAD_INPUTS, ids=[b[0].__name__ for b in BAD_INPUTS]
)
def test_bad_input_is_an_error_naming_the_file_under_strict(raw, tmp_path, corrupt, message):
    corrupt(raw)
    with pytest.raises(InputProblem, match=message) as info:
        run_preprocess(raw, tmp_path, policy="strict")
    assert str(raw) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("corrupt", "message"), BAD_INPUTS, ids=[b[0].__name__ for b in BAD_INPUTS]
)
def test_bad_input_is_a_recorded_skip_under_skip(raw, tmp_path, corrupt, message):
    corrupt(raw)
    report = run_preprocess(raw, tmp_path, policy="skip")
    reasons = [s["reason"] for s in report["skipped"]]
    assert any(pd.Series([r]).str.contains(message).item() for r in reasons), reasons
    table = pd.read_csv(tmp_path / "out" / "frames.csv", dtype={"clip": str})
    used = set(zip(table["clip"], table["frame"], strict=True))
    mentioned = {s["path"] for s in report["skipped"]}
    for png in raw.rglob("*.png"):  # every input frame is used or its skip is on record
        clip = png.parent
        assert (clip.name, int(png.stem)) in used or mentioned & {
            str(png),
            str(clip),
            str(clip / f"{clip.name}.json"),
        }, png
    inputs = report["inputs"]  # and every file is used, skipped or ignored with a reason
    assert inputs["unaccounted"] == []
    assert inputs["files"] == inputs["used"] + inputs["skipped"] + inputs["ignored"]
    assert inputs["files"] == sum(1 for p in raw.rglob("*") if not p.is_dir())


def test_every_raw_file_is_accounted_for_with_a_reason(raw, tmp_path):
    (raw / "001" / "Thumbs.db").write_bytes(b"\0" * 16)
    (raw / "001" / "00000.PNG").write_bytes(b"not read")
    (raw / "001" / "extra").mkdir()
    (raw / "001" / "extra" / "00000.png").write_bytes(b"x")
    (raw / "notes").mkdir()
    (raw / "notes" / "readme.txt").write_text("x")
    (raw / "manifest.csv").write_text("path,size,sha256\n")
    report = run_preprocess(raw, tmp_path, policy="skip")
    inputs = report["inputs"]
    ignored = {Path(i["path"]).relative_to(raw).as_posix(): i["reason"]
               for i in inputs["ignored_files"]}  # fmt: skip
    assert ignored["001/Thumbs.db"].startswith("not a frame (NNNNN.png)")
    assert ignored["001/00000.PNG"].startswith("not a frame (NNNNN.png)")
    assert ignored["001/extra/00000.png"].startswith("in a subfolder of a clip folder")
    assert ignored["notes/readme.txt"] == "inside notes/, not an AFEW-VA clip folder"
    assert ignored["manifest.csv"].startswith("the download's record")
    assert inputs["unaccounted"] == []
    frames = len(pd.read_csv(tmp_path / "out" / "frames.csv"))
    assert inputs["used"] == frames + len(list(raw.glob("*/*.json")))
    assert inputs["files"] == inputs["used"] + inputs["skipped"] + inputs["ignored"]


def _undecodable_frames(clip: Path) -> None:
    for png in clip.glob("*.png"):
        png.write_bytes(b"not a png")


def _no_frames_at_all(clip: Path) -> None:
    for png in clip.glob("*.png"):
        png.unlink()
    edit_json(clip / f"{clip.name}.json", lambda d: d.update(frames={}))


@pytest.mark.parametrize("lose", [_undecodable_frames, _no_frames_at_all])
def test_a_clip_that_loses_every_frame_is_on_record_itself(raw, tmp_path, lose):
    lose(raw / "001")
    report = run_preprocess(raw, tmp_path, policy="skip")
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert reasons[str(raw / "001" / "001.json")] == "no usable frame: clip skipped"
    assert report["inputs"]["unaccounted"] == []


def test_a_folder_that_is_not_afewva_is_refused(tmp_path: Path):
    (tmp_path / "raw" / "something").mkdir(parents=True)
    (tmp_path / "raw" / "something" / "a.txt").write_text("x")
    with pytest.raises(InputProblem, match="not an AFEW-VA folder"):
        run_preprocess(tmp_path / "raw", tmp_path)


def test_download_from_a_folder_copies_without_modifying_and_writes_a_manifest(raw, tmp_path):
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    out = tmp_path / "copy"
    afewva.download(download_config(source="folder", path=str(raw)), out)
    manifest = pd.read_csv(out / "manifest.csv")
    clip_files = [p for p in before if afewva.is_clip_dir(p.parent)]  # not its manifest.csv
    assert sorted(manifest.path) == sorted(p.relative_to(raw).as_posix() for p in clip_files)
    assert {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()} == before


def test_download_from_the_official_zips(raw, tmp_path):
    zips = tmp_path / "zips"
    zips.mkdir()
    shutil.make_archive(str(zips / "part1"), "zip", root_dir=raw.parent, base_dir=raw.name)
    out = tmp_path / "unzipped"
    afewva.download(download_config(source="zips", path=str(zips)), out)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["001", "002", "003", "004"]
    assert (out / "002" / "002.json").exists()


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(
        ConfigError, match="source': Input should be 'synthetic', 'folder' or 'zips'"
    ):
        download_config(source="ftp")
