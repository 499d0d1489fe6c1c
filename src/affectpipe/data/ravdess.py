"""RAVDESS speech (Livingstone & Russo 2018): download and preprocessing.

File names carry every label: `MM-VC-EE-II-SS-RR-AA.ext` (modality, vocal channel, emotion,
intensity, statement, repetition, actor). A name that does not parse is reported, never guessed.
Modality 01 (audio-video mp4) gives a face and its own voice track; 02 (video-only mp4) serves
video-only models and is never paired with silence; 03 (wav) is audio-only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from affectpipe.config import params_section
from affectpipe.data import av, av_download, fetch
from affectpipe.data.av import AVPreprocessConfig as PreprocessConfig
from affectpipe.data.av_download import AVLayout, FolderMode
from affectpipe.data.synthetic.ravdess import SyntheticRavdessConfig, generate
from affectpipe.problems import InputProblem, ProblemLog, files_under

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


@params_section
class DownloadConfig:
    source: Literal["synthetic", "zenodo", "folder"]
    path: str  # folder source: a folder in the official layout (a dep either way)
    folder_mode: FolderMode
    url: str  # Zenodo record API: file names, sizes and md5 checksums
    actors: list[int]
    video: bool  # Video_Speech_Actor_XX.zip (modalities 01 and 02)
    audio: bool  # Audio_Speech_Actors_01-24.zip (modality 03)
    archive_dir: str  # outside the DVC output, so resumable
    synthetic: SyntheticRavdessConfig

    def __post_init__(self) -> None:
        fetch.check_source_path(self.path, "ravdess")


MEDIA = (".mp4", ".wav")


def media(root: Path) -> list[Path]:
    """Every RAVDESS media file under `root`, symlinked `Actor_XX/` folders followed as
    `files_under` follows them (so the accounting sees the same files)."""
    return [p for p in files_under(root) if p.suffix.lower() in MEDIA]


def _zenodo(cfg: DownloadConfig, out_dir: Path) -> list[Path]:
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
    return media(out_dir)


LAYOUT = AVLayout(
    dataset="ravdess",
    title="RAVDESS",
    folder_media=lambda root, cfg: [f for f in media(root) if f.parent.name.startswith("Actor_")],
    expected=lambda cfg: "Actor_XX/*.mp4|wav",
    remote=_zenodo,
    synthetic=generate,
    archive_dir=lambda cfg: Path(cfg.archive_dir),
)


def download(cfg: DownloadConfig, out_dir: Path) -> list[str]:
    """Fill `out_dir` (data/raw/ravdess) from `cfg.source` (`av_download.download`)."""
    return av_download.download(cfg, LAYOUT, out_dir)


# -------------------------------------------------------------------------- preprocess


def sources(raw_dir: Path, log: ProblemLog, notes: list[str]) -> list[av.ClipSource]:
    """Parse every media file under `raw_dir` into clips; bad names go to the log."""
    out, songs = [], 0
    for path in media(raw_dir):
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


def left_alone(path: Path) -> str | None:
    """Why a raw file is no clip's media (report `inputs`); None for speech media."""
    if path.suffix.lower() not in MEDIA:
        return f"not a RAVDESS media file ({' or '.join(MEDIA)})"
    try:
        song = parse_name(path).vocal_channel == 2
    except InputProblem:
        return None  # a bad name has its own skip
    return "song (vocal channel 02): the pipeline reads speech" if song else None


def preprocess(cfg: PreprocessConfig, raw_dir: Path, out_dir: Path, seed: int) -> dict[str, Any]:
    """Write data/processed/ravdess per docs/design.md; returns the report."""
    log, notes = ProblemLog(cfg.bad_input), []
    clips = sources(raw_dir, log, notes)
    inputs = av.Inputs(raw_dir, left_alone)
    return av.build("ravdess", clips, cfg, out_dir, seed, log, notes, inputs)
