"""RAVDESS speech (Livingstone & Russo 2018): download and preprocessing.

File names carry every label: `MM-VC-EE-II-SS-RR-AA.ext` (modality, vocal channel, emotion,
intensity, statement, repetition, actor). A name that does not parse is reported, never guessed.
Modality 01 (audio-video mp4) gives a face and its own voice track; 02 (video-only mp4) serves
video-only models and is never paired with silence; 03 (wav) is audio-only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectpipe.config import from_section
from affectpipe.data import av, fetch
from affectpipe.data.synthetic.ravdess import SyntheticRavdessConfig, generate
from affectpipe.problems import InputProblem, ProblemLog

ZENODO_RECORD = "https://zenodo.org/api/records/1188976"
AUDIO_ZIP = "Audio_Speech_Actors_01-24.zip"
WAV_RATE = 48000
MODALITY = {1: "audio-video", 2: "video-only", 3: "audio-only"}
EXTENSION = {1: ".mp4", 2: ".mp4", 3: ".wav"}
INTENSITY = {1: "normal", 2: "strong"}
STATEMENT = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


@dataclass(frozen=True)
class RavdessName:
    modality: int
    vocal_channel: int  # 1 speech, 2 song
    emotion: int  # unified id: the RAVDESS code minus one
    intensity: int
    statement: int
    repetition: int
    actor: int


def parse_name(path: Path | str) -> RavdessName:
    """Parse a RAVDESS file name; raises `InputProblem` naming the field that is wrong."""
    path = Path(path)
    m = _NAME.match(path.stem)
    if not m:
        raise InputProblem(path, "name is not RAVDESS 'MM-VC-EE-II-SS-RR-AA' (seven 2-digit codes)")
    mm, vc, ee, ii, ss, rr, aa = (int(g) for g in m.groups())
    checks = [
        ("modality", mm, MODALITY),
        ("vocal channel", vc, (1, 2)),
        ("emotion", ee, range(1, 9)),
        ("intensity", ii, INTENSITY),
        ("statement", ss, STATEMENT),
        ("repetition", rr, (1, 2)),
        ("actor", aa, range(1, 25)),
    ]
    for what, value, valid in checks:
        if value not in valid:
            raise InputProblem(path, f"{what} code {value:02d} is not a RAVDESS {what}")
    if ee == 1 and ii == 2:
        raise InputProblem(path, "neutral (01) has no strong intensity (02) in RAVDESS")
    if path.suffix and path.suffix.lower() != EXTENSION[mm]:
        raise InputProblem(path, f"{MODALITY[mm]} file should be {EXTENSION[mm]}")
    return RavdessName(mm, vc, ee - 1, ii, ss, rr, aa)


# ----------------------------------------------------------------------------- download


@dataclass
class RavdessDownloadConfig:
    source: str = "synthetic"  # synthetic | zenodo | folder
    path: str | None = None  # folder source: a folder in the official layout
    folder_mode: str = "copy"  # copy | symlink; the source folder is never modified
    url: str = ZENODO_RECORD  # Zenodo record API: file names, sizes and md5 checksums
    actors: list[int] = field(default_factory=lambda: list(range(1, 25)))
    video: bool = True  # Video_Speech_Actor_XX.zip (modalities 01 and 02)
    audio: bool = True  # Audio_Speech_Actors_01-24.zip (modality 03)
    archive_dir: str = "data/raw/.ravdess-archives"  # outside the DVC output, so resumable
    synthetic: SyntheticRavdessConfig = field(default_factory=SyntheticRavdessConfig)

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "zenodo", "folder"):
            raise ValueError(
                f"download.ravdess.source='{self.source}'; valid: ['synthetic', 'zenodo', 'folder']"
            )
        if self.source == "folder" and not self.path:
            raise ValueError("download.ravdess.source=folder needs download.ravdess.path")


def _media(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mp4", ".wav"))


def _zenodo(cfg: RavdessDownloadConfig, out_dir: Path) -> list[Path]:
    record = fetch.fetch_json(cfg.url)
    files = {f["key"]: f for f in record.get("files", [])}  # type: ignore[union-attr]
    wanted = [f"Video_Speech_Actor_{a:02d}.zip" for a in cfg.actors] if cfg.video else []
    wanted += [AUDIO_ZIP] if cfg.audio else []
    missing = [w for w in wanted if w not in files]
    if missing:
        raise fetch.DownloadError(f"{cfg.url}: record lists no {missing}")
    actor_dirs = {f"Actor_{a:02d}" for a in cfg.actors}
    for name in wanted:
        meta = files[name]
        remote = fetch.Remote(meta["links"]["self"], name, meta.get("size"), meta.get("checksum"))
        archive = fetch.download(remote, Path(cfg.archive_dir))
        fetch.extract_zip(archive, out_dir, keep=lambda m: m.split("/")[0] in actor_dirs)
    return _media(out_dir)


def _folder(cfg: RavdessDownloadConfig, out_dir: Path) -> list[Path]:
    src = Path(cfg.path)  # type: ignore[arg-type]
    if not src.is_dir():
        raise InputProblem(src, "download.ravdess.path is not a folder")
    files = [f for f in _media(src) if f.parent.name.startswith("Actor_")]
    if not files:
        raise InputProblem(src, "no RAVDESS media (Actor_XX/*.mp4|wav) in this folder")
    fetch.verify_against_manifest(src, files)
    return fetch.take_folder(src, out_dir, files, cfg.folder_mode)


def download(cfg: dict, out_dir: Path, seed: int) -> None:
    """Fill `out_dir` (data/raw/ravdess) in the official layout, plus `manifest.csv`.

    `seed` is not used: the synthetic set has its own `synthetic.seed`, which DVC tracks with
    this stage's params section, so a new top-level seed does not regenerate the raw data.
    """
    values = dict(cfg)
    values["synthetic"] = from_section(
        SyntheticRavdessConfig, values.get("synthetic", {}), "download.ravdess.synthetic"
    )
    c = from_section(RavdessDownloadConfig, values, "download.ravdess")
    out_dir.mkdir(parents=True, exist_ok=True)
    if c.source == "synthetic":
        files = generate(c.synthetic, out_dir)
    elif c.source == "zenodo":
        files = _zenodo(c, out_dir)
    else:
        files = _folder(c, out_dir)
    fetch.write_manifest(out_dir, files)


# -------------------------------------------------------------------------- preprocess


def sources(raw_dir: Path, log: ProblemLog, notes: list[str]) -> list[av.ClipSource]:
    """Parse every media file under `raw_dir` into clips; bad names go to the log."""
    out, songs = [], 0
    for path in _media(raw_dir):
        try:
            n = parse_name(path)
            if path.parent.name.startswith("Actor_") and path.parent.name != f"Actor_{n.actor:02d}":
                raise InputProblem(path, f"actor {n.actor:02d} filed under {path.parent.name}")
        except InputProblem as p:
            log.report(p)
            continue
        if n.vocal_channel == 2:
            songs += 1
            continue
        out.append(
            av.ClipSource(
                clip_id=path.stem,
                dataset="ravdess",
                actor=n.actor,
                emotion=n.emotion,
                intensity=INTENSITY[n.intensity],
                statement=n.statement,
                repetition=n.repetition,
                video=path if n.modality in (1, 2) else None,
                audio=path if n.modality in (1, 3) else None,  # 01: its own track
                wav_rate=WAV_RATE,
            )
        )
    if songs:
        notes.append(f"{songs} song files (vocal channel 02) not used: this pipeline is speech")
    if not any(s.video for s in out):
        notes.append(f"no video: {raw_dir} holds no RAVDESS mp4 (01/02); the audio side only")
    return out


def preprocess(cfg: dict, raw_dir: Path, out_dir: Path, seed: int) -> dict[str, Any]:
    """Write data/processed/ravdess per docs/design.md; returns the report."""
    c = av.av_config(cfg, "preprocess.ravdess")
    log, notes = ProblemLog(c.bad_input), []
    clips = sources(raw_dir, log, notes)
    return av.build("ravdess", clips, c, out_dir, seed, log, notes)
