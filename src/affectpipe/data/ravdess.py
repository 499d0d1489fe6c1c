"""RAVDESS speech (Livingstone & Russo 2018): download and preprocessing.

File names carry every label: `MM-VC-EE-II-SS-RR-AA.ext` (modality, vocal channel, emotion,
intensity, statement, repetition, actor). A name that does not parse is reported, never guessed.
Modality 01 (audio-video mp4) gives a face and its own voice track; 02 (video-only mp4) serves
video-only models and is never paired with silence; 03 (wav) is audio-only. A recording is
decoded and embedded once where its files show they hold it (`sources`): an 02 with the 01's
video packets is covered by the 01 clip, a 03 wav of the 01 track's duration is its audio.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from affectpipe.config import params_section
from affectpipe.data import av, av_download, fetch
from affectpipe.data.av import AVPreprocessConfig as PreprocessConfig
from affectpipe.data.av_download import AVLayout, FolderMode
from affectpipe.data.media import audio_declared_s, video_stream_digest, wav_declared_s
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


# The 03 wav and the 01 file's AAC track of one recording declare durations this close: AAC
# encoders add priming (1024-2112 samples) and pad the last frame, a few ms to ~50 ms at 48 kHz,
# which a container may or may not count in. 0.1 s is twice the largest such slack, and a small
# part of a RAVDESS take (about 3-5 s).
SAME_AUDIO_TOLERANCE_S = 0.1


@dataclass(frozen=True)
class Sources:
    """The clips of a raw folder, and the files one of them covers without reading them
    (`covered`: path -> why, for the report's per-file accounting)."""

    clips: list[av.ClipSource]
    covered: dict[Path, str]


def _recording(n: RavdessName) -> tuple[int, ...]:
    """Every name field but the modality: the files of one recording share it."""
    return (n.vocal_channel, n.emotion, n.intensity, n.statement, n.repetition, n.actor)


def _same_video(twin: Path, av_file: Path) -> bool:
    """Whether the 02 `twin` holds `av_file`'s video stream packet for packet (demuxed, never
    decoded). A file that does not demux compares unequal: it stays a clip of its own, whose
    decode reports its problem."""
    try:
        return video_stream_digest(twin) == video_stream_digest(av_file)
    except InputProblem:
        return False


def _audio_mismatch(wav: Path, av_file: Path) -> str | None:
    """Why the 03 `wav` is not taken for `av_file`'s audio, from the headers alone (the wav's
    RIFF header, the container's audio stream); None when the durations agree."""
    try:
        track_s = audio_declared_s(av_file)
    except InputProblem:
        return "whose 01 file does not open"
    if track_s is None:
        return "whose 01 file has no audio stream (or declares no duration)"
    wav_s = wav_declared_s(wav)
    if wav_s is None:
        return "whose RIFF header declares no duration"
    if abs(wav_s - track_s) > SAME_AUDIO_TOLERANCE_S:
        return f"whose duration differs from the 01 track's by more than {SAME_AUDIO_TOLERANCE_S} s"
    return None


def _count_note(counts: Counter[str], what: str) -> str:
    """One report note: how many `what` files were kept on their own, and why."""
    why = "; ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    return f"{sum(counts.values())} {what} kept as clips of their own: {why}"


def sources(raw_dir: Path, log: ProblemLog, notes: list[str]) -> Sources:
    """Parse every media file under `raw_dir` into clips, one per recording where the files
    show they hold it: an 02 whose video stream is the 01's packet for packet is covered by the
    01 clip, and a 03 wav whose duration is the 01 track's is that clip's audio (lossless: the
    01 track is then never decoded). Otherwise each file is a clip, as is a file without an 01.
    Bad names go to the log."""
    parsed: list[tuple[Path, RavdessName]] = []
    songs = 0
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
        else:
            parsed.append((path, n))
    files_of: dict[tuple[int, ...], Counter[int]] = {}  # recording -> files per modality
    av_file: dict[tuple[int, ...], Path] = {}
    for path, n in parsed:
        files_of.setdefault(_recording(n), Counter())[n.modality] += 1
        if n.modality == 1:
            av_file[_recording(n)] = path
    covered: dict[Path, str] = {}
    wav_of: dict[Path, Path] = {}  # 01 file -> the 03 wav read as its audio
    apart: dict[int, Counter[str]] = {2: Counter(), 3: Counter()}
    for path, n in parsed:
        count = files_of[_recording(n)]
        if n.modality == 1 or count[1] != 1 or count[n.modality] != 1:
            continue  # no 01 (or a name twice, in two folders): each file as named
        first = av_file[_recording(n)]
        if n.modality == 2:
            if _same_video(path, first):
                covered[path] = (
                    f"same video stream as {first.name}: decoded and embedded once, as that clip"
                )
            else:
                apart[2]["whose video stream is not their 01 file's, packet for packet"] += 1
        elif (why := _audio_mismatch(path, first)) is None:
            wav_of[first] = path
        else:
            apart[3][why] += 1
    out, read_as_audio = [], set(wav_of.values())
    for path, n in parsed:
        if path in covered or path in read_as_audio:
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
                # 01: the 03 wav of its recording, else its own track
                audio=wav_of.get(path, path) if n.modality in (1, 3) else None,
                wav_rate=WAV_RATE,
            )
        )
    if covered:
        notes.append(
            f"{len(covered)} video-only (02) files hold their 01 file's video stream packet for "
            "packet: decoded and embedded once, as the 01 clip"
        )
    if wav_of:
        notes.append(
            f"{len(wav_of)} audio-only (03) wavs declare their 01 file's audio duration: read as "
            "the 01 clip's audio (lossless), the 01 track not decoded"
        )
    if apart[2]:
        notes.append(_count_note(apart[2], "video-only (02) files with an 01 file"))
    if apart[3]:
        notes.append(_count_note(apart[3], "audio-only (03) wavs with an 01 file"))
    if songs:
        notes.append(f"{songs} song files (vocal channel 02) not used: this pipeline is speech")
    if not any(s.video for s in out):
        notes.append(f"no video: {raw_dir} holds no RAVDESS mp4 (01/02); the audio side only")
    return Sources(out, covered)


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
    found = sources(raw_dir, log, notes)
    inputs = av.Inputs(raw_dir, lambda p: found.covered.get(p) or left_alone(p))
    return av.build("ravdess", found.clips, cfg, out_dir, seed, log, notes, inputs)
