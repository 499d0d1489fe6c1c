"""CREMA-D (Cao et al. 2014): download and preprocessing.

Names are `ActorID_Sentence_Emotion_Level` (e.g. `1001_DFA_ANG_XX`). A clip's face comes from
`VideoFlash/<name>.flv` and its voice from `AudioWAV/<name>.wav`, paired by name (the flv's own
track stands in when the wav is absent, and the report says so). Four clips are known to be
broken and are skipped with that reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectpipe.config import from_section
from affectpipe.data import av, fetch
from affectpipe.data.labels import CREMAD_EMOTION
from affectpipe.data.synthetic.cremad import LEVELS, SENTENCES, SyntheticCremadConfig, generate
from affectpipe.problems import InputProblem, ProblemLog

REPO = "CheyneyComputerScience/CREMA-D"
FOLDERS = {"AudioWAV": ".wav", "VideoFlash": ".flv"}
WAV_RATE = 16000
LEVEL_NAME = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
BROKEN = frozenset({"1076_MTI_NEU_XX", "1076_MTI_SAD_XX", "1064_TIE_SAD_XX", "1064_IEO_DIS_MD"})
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


@dataclass(frozen=True)
class CremadName:
    actor: int
    sentence: str
    emotion: int  # unified id
    level: str


def parse_name(path: Path | str) -> CremadName:
    """Parse a CREMA-D file name; raises `InputProblem` naming the field that is wrong."""
    path = Path(path)
    m = _NAME.match(path.stem)
    if not m:
        raise InputProblem(path, "name is not CREMA-D 'ActorID_Sentence_Emotion_Level'")
    actor, sentence, emotion, level = int(m[1]), m[2], m[3], m[4]
    if not 1001 <= actor <= 1091:
        raise InputProblem(path, f"actor {actor} is not a CREMA-D actor (1001..1091)")
    for what, value, valid in (
        ("sentence", sentence, SENTENCES),
        ("emotion", emotion, sorted(CREMAD_EMOTION)),
        ("level", level, LEVELS),
    ):
        if value not in valid:
            raise InputProblem(path, f"{what} '{value}' is not one of {list(valid)}")
    return CremadName(actor, sentence, CREMAD_EMOTION[emotion], level)


# ----------------------------------------------------------------------------- download


@dataclass
class CremadDownloadConfig:
    source: str = "synthetic"  # synthetic | github | folder
    path: str | None = None  # folder source: holds AudioWAV/ and/or VideoFlash/
    folder_mode: str = "copy"  # copy | symlink; the source folder is never modified
    repo: str = REPO
    ref: str = "master"
    api_url: str = "https://api.github.com"  # the tree lists every file
    raw_url: str = "https://raw.githubusercontent.com"  # serves the Git LFS pointers
    media_url: str = "https://media.githubusercontent.com/media"  # serves the LFS objects
    folders: list[str] = field(default_factory=lambda: ["AudioWAV", "VideoFlash"])
    actors: list[int] | None = None  # null: all 91
    synthetic: SyntheticCremadConfig = field(default_factory=SyntheticCremadConfig)

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "github", "folder"):
            raise ValueError(
                f"download.cremad.source='{self.source}'; valid: ['synthetic', 'github', 'folder']"
            )
        bad = sorted(set(self.folders) - set(FOLDERS))
        if bad:
            raise ValueError(f"download.cremad.folders {bad} invalid; valid: {sorted(FOLDERS)}")
        if self.source == "folder" and not self.path:
            raise ValueError("download.cremad.source=folder needs download.cremad.path")


def _media(root: Path, folders: list[str] | None = None) -> list[Path]:
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


def _github(cfg: CremadDownloadConfig, out_dir: Path) -> list[Path]:
    tree = fetch.fetch_json(f"{cfg.api_url}/repos/{cfg.repo}/git/trees/{cfg.ref}?recursive=1")
    if tree.get("truncated"):  # type: ignore[union-attr]
        raise fetch.DownloadError(f"{cfg.repo}: the repository tree listing came back truncated")
    files = []
    for entry in tree["tree"]:  # type: ignore[index]
        folder, _, name = entry["path"].partition("/")
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
    for rel in files:
        pointer = lfs_pointer(fetch.fetch_text(f"{cfg.raw_url}/{cfg.repo}/{cfg.ref}/{rel}"))
        sha, size = pointer if pointer else (None, None)
        base = cfg.media_url if pointer else cfg.raw_url
        folder, _, name = rel.partition("/")
        remote = fetch.Remote(
            f"{base}/{cfg.repo}/{cfg.ref}/{rel}", name, size, f"sha256:{sha}" if sha else None
        )
        taken.append(fetch.download(remote, out_dir / folder))
    return taken


def _folder(cfg: CremadDownloadConfig, out_dir: Path) -> list[Path]:
    src = Path(cfg.path)  # type: ignore[arg-type]
    if not src.is_dir():
        raise InputProblem(src, "download.cremad.path is not a folder")
    files = _media(src, cfg.folders)
    if not files:
        raise InputProblem(src, f"no CREMA-D media in {[f + '/' for f in cfg.folders]}")
    fetch.verify_against_manifest(src, files)
    return fetch.take_folder(src, out_dir, files, cfg.folder_mode)


def download(cfg: dict, out_dir: Path, seed: int) -> None:
    """Fill `out_dir` (data/raw/cremad) in the official layout, plus `manifest.csv`.

    `seed` is not used: the synthetic set has its own `synthetic.seed`, which DVC tracks with
    this stage's params section, so a new top-level seed does not regenerate the raw data.
    """
    values = dict(cfg)
    values["synthetic"] = from_section(
        SyntheticCremadConfig, values.get("synthetic", {}), "download.cremad.synthetic"
    )
    c = from_section(CremadDownloadConfig, values, "download.cremad")
    out_dir.mkdir(parents=True, exist_ok=True)
    if c.source == "synthetic":
        files = generate(c.synthetic, out_dir)
    elif c.source == "github":
        files = _github(c, out_dir)
    else:
        files = _folder(c, out_dir)
    fetch.write_manifest(out_dir, files)


# -------------------------------------------------------------------------- preprocess


def sources(raw_dir: Path, log: ProblemLog, notes: list[str]) -> list[av.ClipSource]:
    """Pair `.flv` and `.wav` by name into clips; bad and known-broken names go to the log."""
    by_stem: dict[str, dict[str, Path]] = {}
    for path in _media(raw_dir):
        try:
            parse_name(path)
        except InputProblem as p:
            log.report(p)
            continue
        if path.stem in BROKEN:  # known, not a surprise: recorded under either policy
            log.skipped.append({"path": str(path), "reason": "known broken CREMA-D clip"})
            continue
        by_stem.setdefault(path.stem, {})[path.suffix.lower()] = path
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


def preprocess(cfg: dict, raw_dir: Path, out_dir: Path, seed: int) -> dict[str, Any]:
    """Write data/processed/cremad per docs/design.md; returns the report."""
    c = av.av_config(cfg, "preprocess.cremad")
    log, notes = ProblemLog(c.bad_input), []
    return av.build("cremad", sources(raw_dir, log, notes), c, out_dir, seed, log, notes)
