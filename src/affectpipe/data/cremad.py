"""CREMA-D (Cao et al. 2014): download and preprocessing.

Names are `ActorID_Sentence_Emotion_Level` (e.g. `1001_DFA_ANG_XX`). A clip's face comes from
`VideoFlash/<name>.flv` and its voice from `AudioWAV/<name>.wav`, paired by name (the flv's own
track stands in when the wav is absent, and the report says so). The release writes the
unspecified level `XX` once as a single `X`; both parse, and the clip is named with `XX`.

Whether a clip is usable is decided by its files, never by its name: the clips the release's
authors list as broken (`REPORTED_BROKEN`, kept only as a record) go through the same decoding
and speech test as every other, so a good side is kept and a bad side is skipped with what is
wrong with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from affectpipe.config import params_section
from affectpipe.data import av, av_download, fetch
from affectpipe.data.av import AVPreprocessConfig
from affectpipe.data.av_download import AVLayout, FolderMode
from affectpipe.data.labels import CREMAD_EMOTION
from affectpipe.data.perceived import SUMMARY, PerceivedConfig, preprocess_perceived
from affectpipe.data.synthetic.cremad import LEVELS, SENTENCES, SyntheticCremadConfig, generate
from affectpipe.problems import InputProblem, ProblemLog

Folder = Literal["AudioWAV", "VideoFlash"]
FOLDERS: dict[str, str] = {"AudioWAV": ".wav", "VideoFlash": ".flv"}  # folder -> extension
WAV_RATE = 16000
LEVEL_NAME = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
LEVEL_SPELLINGS = {"X": "XX"}  # other spellings of a level in the release -> the table's
# Reported broken by users of the release; documentation only: the files decide (docs/av_data.md).
REPORTED_BROKEN = ("1076_MTI_NEU_XX", "1076_MTI_SAD_XX", "1064_TIE_SAD_XX", "1064_IEO_DIS_MD")
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")


@dataclass(frozen=True)
class CremadName:
    actor: int
    sentence: str
    emotion: int  # unified id
    level: str  # the code table's spelling (`X` read as `XX`)
    stem: str  # the name in the table's spelling: the clip id, and what flv and wav pair by


def parse_name(path: Path | str) -> CremadName:
    """Parse a CREMA-D file name; raises `InputProblem` naming the field that is wrong."""
    path = Path(path)
    m = _NAME.match(path.stem)
    if not m:
        raise InputProblem(path, "name is not CREMA-D 'ActorID_Sentence_Emotion_Level'")
    actor, sentence, emotion = int(m[1]), m[2], m[3]
    level = LEVEL_SPELLINGS.get(m[4], m[4])
    if not 1001 <= actor <= 1091:
        raise InputProblem(path, f"actor {actor} is not a CREMA-D actor (1001..1091)")
    for what, value, valid in (
        ("sentence", sentence, SENTENCES),
        ("emotion", emotion, sorted(CREMAD_EMOTION)),
        ("level", level, LEVELS),
    ):
        if value not in valid:
            raise InputProblem(path, f"{what} '{value}' is not one of {list(valid)}")
    stem = f"{m[1]}_{sentence}_{emotion}_{level}"
    return CremadName(actor, sentence, CREMAD_EMOTION[emotion], level, stem)


# ----------------------------------------------------------------------------- download


@params_section
class DownloadConfig:
    source: Literal["synthetic", "github", "folder"]
    path: str  # folder source: holds AudioWAV/ and/or VideoFlash/ (a dep either way)
    folder_mode: FolderMode
    repo: str
    ref: str
    api_url: str  # the tree lists every file
    raw_url: str  # serves the Git LFS pointers
    media_url: str  # serves the LFS objects
    folders: list[Folder]
    actors: list[int] | None  # null: all 91
    synthetic: SyntheticCremadConfig

    def __post_init__(self) -> None:
        fetch.check_source_path(self.path, "cremad")


def media(root: Path, folders: list[str] | None = None) -> list[Path]:
    """The CREMA-D media files of `folders` (default: both) under `root`."""
    return sorted(
        p
        for folder in folders or list(FOLDERS)
        if (root / folder).is_dir()
        for p in (root / folder).iterdir()
        if p.suffix.lower() == FOLDERS[folder]
    )


def lfs_pointer(text: str) -> tuple[str, int] | None:
    """(sha256, size) from a Git LFS pointer file, or None if `text` is not one."""
    oid = re.search(r"^oid sha256:([0-9a-f]{64})$", text, re.M)
    size = re.search(r"^size (\d+)$", text, re.M)
    if not text.startswith("version https://git-lfs") or not oid or not size:
        return None
    return oid[1], int(size[1])


def _github(cfg: DownloadConfig, out_dir: Path) -> list[Path]:
    tree = fetch.fetch_json(f"{cfg.api_url}/repos/{cfg.repo}/git/trees/{cfg.ref}?recursive=1")
    if tree.get("truncated"):  # type: ignore[union-attr]
        raise fetch.DownloadError(f"{cfg.repo}: the repository tree listing came back truncated")
    files, tables = [], []
    for entry in tree["tree"]:  # type: ignore[index]
        folder, _, name = entry["path"].partition("/")
        if entry["type"] == "blob" and entry["path"] in LAYOUT.tables:
            tables.append(entry["path"])
        if entry["type"] != "blob" or folder not in cfg.folders:
            continue
        if not name.endswith(FOLDERS[folder]):
            continue
        if cfg.actors is not None and not any(name.startswith(f"{a}_") for a in cfg.actors):
            continue
        files.append(entry["path"])
    if not files:
        raise fetch.DownloadError(f"{cfg.repo}@{cfg.ref}: no media under {cfg.folders}")
    taken = []
    for rel in files + tables:  # the ratings are plain git files; an LFS pointer is followed too
        pointer = lfs_pointer(fetch.fetch_text(f"{cfg.raw_url}/{cfg.repo}/{cfg.ref}/{rel}"))
        sha, size = pointer if pointer else (None, None)
        base = cfg.media_url if pointer else cfg.raw_url
        folder, _, name = rel.partition("/")
        remote = fetch.Remote(
            f"{base}/{cfg.repo}/{cfg.ref}/{rel}", name, size, f"sha256:{sha}" if sha else None
        )
        taken.append(fetch.download(remote, out_dir / folder))
    return taken


LAYOUT = AVLayout(
    dataset="cremad",
    title="CREMA-D",
    folder_media=lambda root, cfg: media(root, cfg.folders),
    expected=lambda cfg: " and/or ".join(f"{f}/" for f in cfg.folders),
    remote=_github,
    synthetic=generate,
    tables=(SUMMARY,),  # the crowd ratings (data/perceived.py), taken when the source has them
)


def download(cfg: DownloadConfig, out_dir: Path) -> list[str]:
    """Fill `out_dir` (data/raw/cremad) from `cfg.source` (`av_download.download`), the crowd
    ratings' `processedResults/summaryTable.csv` included when the source has it; returns notes."""
    return av_download.download(cfg, LAYOUT, out_dir)


# -------------------------------------------------------------------------- preprocess


def sources(raw_dir: Path, log: ProblemLog, notes: list[str]) -> list[av.ClipSource]:
    """Pair `.flv` and `.wav` by name (in the table's spelling) into clips; bad names go to the
    log. Whether each file is usable is for decoding to find out (`av.build`)."""
    by_stem: dict[str, dict[str, Path]] = {}
    for path in media(raw_dir):
        try:
            name = parse_name(path)
        except InputProblem as p:
            log.report(p)
            continue
        taken = by_stem.setdefault(name.stem, {})
        other = taken.get(path.suffix.lower())
        if other is not None:  # `_X` and `_XX` of one clip: which is meant, the name cannot say
            log.report(InputProblem(path, f"the same clip as {other.name} (level spelled apart)"))
            continue
        taken[path.suffix.lower()] = path
    out, from_track = [], 0
    for stem, paths in sorted(by_stem.items()):
        n = parse_name(stem)
        flv, wav = paths.get(".flv"), paths.get(".wav")
        from_track += wav is None
        out.append(
            av.ClipSource(
                clip_id=stem,
                dataset="cremad",
                actor=n.actor,
                emotion=n.emotion,
                intensity=LEVEL_NAME[n.level],
                statement=n.sentence,
                repetition=1,
                video=flv,
                audio=wav or flv,
                wav_rate=WAV_RATE,
            )
        )
    if from_track:
        notes.append(f"{from_track} clips have no AudioWAV file: their flv's own track is used")
    if not any(s.video for s in out):
        notes.append(f"no video: {raw_dir} holds no VideoFlash/*.flv; the audio side only")
    return out


def left_alone(path: Path, raw_dir: Path) -> str | None:
    """Why a raw file is no clip's media (report `inputs`); None for the media and the ratings."""
    parts = path.relative_to(raw_dir).parts
    if "/".join(parts) == SUMMARY:
        return None  # read for the perceived set when present
    folder = parts[0]
    if folder not in FOLDERS:
        return f"not read: the clips are read from {' and '.join(f'{f}/' for f in FOLDERS)}"
    if len(parts) > 2:
        return f"in a subfolder of {folder}/: its media lie in {folder}/ itself"
    if path.suffix.lower() != FOLDERS[folder]:
        return f"not a {FOLDERS[folder]} file, the only kind {folder}/ holds"
    return None


@params_section
class PreprocessConfig(AVPreprocessConfig):
    """`preprocess.cremad`: the shared AV settings, and how crowd ratings make the perceived set."""

    perceived: PerceivedConfig


def preprocess(cfg: PreprocessConfig, raw_dir: Path, out_dir: Path, seed: int) -> dict[str, Any]:
    """Write data/processed/cremad per docs/design.md, and `perceived.csv` from the crowd ratings
    (`affectpipe.data.perceived`); returns the report."""
    log, notes = ProblemLog(cfg.bad_input), []

    def perceived(clips: pd.DataFrame) -> dict[str, Any]:
        args = (raw_dir, clips, cfg.perceived, out_dir, cfg.folds.folds, log)
        return {"perceived": preprocess_perceived(*args)}

    inputs = av.Inputs(raw_dir, lambda path: left_alone(path, raw_dir), (raw_dir / SUMMARY,))
    clips = sources(raw_dir, log, notes)
    return av.build("cremad", clips, cfg, out_dir, seed, log, notes, inputs, perceived)
