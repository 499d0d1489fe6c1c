"""Preprocessing shared by the audio-visual datasets (RAVDESS, CREMA-D).

A dataset module parses its file names into `ClipSource`s; `build` turns them into the
products of docs/design.md: 16 kHz mono audio, a fixed number of face-cropped frames sampled
evenly over each video, actor-disjoint folds, congruence pairs, `clips.csv`, `pairs.csv` and a
`report.json` that lists every skipped input with its reason. Audio and video of a clip are
handled separately, so a clip with a broken video still serves audio-only models (and the
reverse), and the problem is on record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from affectpipe.config import params_section
from affectpipe.data import media
from affectpipe.data.faces import DETECTOR
from affectpipe.data.fetch import MANIFEST, MANIFEST_NOTE
from affectpipe.data.framecrop import Crop, crop_clip
from affectpipe.data.labels import EMOTIONS
from affectpipe.data.pairs import PairConfig, make_pairs
from affectpipe.data.speech import SpeechGate, require_speech
from affectpipe.data.splits import SPLITS, FoldConfig, assign_folds, split_of
from affectpipe.problems import (
    InputProblem,
    Policy,
    ProblemLog,
    account_files,
    as_input_problem,
    atomic_path,
    files_under,
    write_json,
)

LOW_COVERAGE = 0.5  # a clip whose face is found in fewer of its sampled frames is listed
CLIP_COLUMNS = [
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


@params_section
class ClipSettings:
    """How a clip becomes model input: what `predict` must repeat on a new video, so the report
    records it (`settings`) and it travels into features and checkpoints."""

    n_frames: int  # frames sampled evenly over each video (VideoMAE's clip length)
    frame_size: int  # square crops; the backbone's processor resizes further
    crop: Crop  # face: detected landmarks' box (data.faces); foreground; center
    margin: float  # grow the face (or foreground) box by this fraction of its side
    decode_max_side: int  # shrink frames at decode (1280x720 sources) to bound memory
    sample_rate: int  # audio out: mono float32
    speech_floor_db: float  # an active (speech) frame is above this level, dBFS
    speech_snr_db: float  # ... and this many dB above the recording's own noise floor
    min_speech_s: float  # a recording with fewer active seconds holds no speech (skipped)

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.frame_size < 8:
            raise ValueError(f"n_frames={self.n_frames}, frame_size={self.frame_size} too small")

    def speech_gate(self) -> SpeechGate:
        """What decides that a recording holds speech (`data.speech`)."""
        return SpeechGate(self.speech_floor_db, self.speech_snr_db, self.min_speech_s)


def settings_of(cfg: ClipSettings) -> dict[str, Any]:
    """The clip settings as the report records them, in their declared order."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(ClipSettings)}


@params_section
class AVPreprocessConfig(ClipSettings):
    """`preprocess.ravdess` (and `preprocess.cremad`, which adds `perceived`): the clip settings,
    then splits and pairs."""

    bad_input: Policy  # strict: stop at the first bad file | skip: record it and go on
    folds: FoldConfig
    pairs: PairConfig


@dataclass(frozen=True)
class ClipSource:
    """One clip as named on disk: labels from the file name, and where each modality lives."""

    clip_id: str
    dataset: str
    actor: int
    emotion: int  # unified id
    intensity: str
    statement: int | str
    repetition: int
    video: Path | None  # container to take frames from
    audio: Path | None  # a WAV, or a container whose own audio track is used
    wav_rate: int | None = None  # the sample rate the dataset's WAVs are published at


@dataclass
class _Run:
    cfg: AVPreprocessConfig
    out_dir: Path
    log: ProblemLog
    resampled: list[dict[str, Any]] = field(default_factory=list)
    truncated: list[dict[str, str]] = field(default_factory=list)  # kept, with the media's note
    center_fallback: list[str] = field(default_factory=list)
    coverage: dict[str, float] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)  # input files that reached an output


@dataclass(frozen=True)
class Inputs:
    """The raw folder and why a file in it that is no clip's media is left alone
    (`ignore_reason`: None for the clips' media); `side_files` are read when present."""

    raw_dir: Path
    ignore_reason: Callable[[Path], str | None]
    side_files: tuple[Path, ...] = ()

    def account(self, used: set[str], log: ProblemLog) -> dict[str, Any]:
        files, ignored = files_under(self.raw_dir), {}
        for path in files:
            why = MANIFEST_NOTE if path == self.raw_dir / MANIFEST else self.ignore_reason(path)
            if why is not None:
                ignored[str(path)] = why
        read = used | {str(p) for p in self.side_files if p.is_file()}
        return account_files(files, read, log, ignored)


def _note(run: _Run, path: Path, note: str | None) -> None:
    """Put a kept file's truncation note on record."""
    if note is not None:
        run.truncated.append({"path": str(path), "note": note})


def _audio(src: ClipSource, run: _Run) -> media.Audio | None:
    cfg = run.cfg
    try:
        if src.audio.suffix.lower() in media.WAV_EXTS:
            audio = media.read_wav(src.audio, cfg.sample_rate)
            if src.wav_rate and audio.source_rate != src.wav_rate:
                run.resampled.append(
                    {"path": str(src.audio), "rate": audio.source_rate, "expected": src.wav_rate}
                )
        else:
            audio = media.read_track(src.audio, cfg.sample_rate)
        require_speech(src.audio, audio.samples, audio.sample_rate, cfg.speech_gate())
        with atomic_path(run.out_dir / "audio" / f"{src.clip_id}.wav") as tmp:
            media.write_float_wav(tmp, audio.samples, cfg.sample_rate)
    except Exception as err:  # one clip's failure, whatever it is, costs no other clip
        run.log.report(as_input_problem(src.audio, err))
        return None
    run.used.add(str(src.audio))
    _note(run, src.audio, audio.note)
    return audio


def _frames(src: ClipSource, run: _Run) -> bool:
    """Write the clip's sampled crops; False (and the problem on record) if unusable."""
    cfg = run.cfg
    try:
        video = media.read_video(src.video, cfg.decode_max_side)
        frames = video.frames
        if len(frames) < cfg.n_frames:
            raise InputProblem(
                src.video, f"{len(frames)} frames, fewer than the {cfg.n_frames} requested"
            )
        picked = frames[media.sample_indices(len(frames), cfg.n_frames)]  # (T, H, W, 3)
        crop = crop_clip(picked, cfg.crop, cfg.frame_size, cfg.margin)
        npy = run.out_dir / "frames" / f"{src.clip_id}.npy"
        with atomic_path(npy) as tmp, open(tmp, "wb") as f:  # to a name, np.save adds `.npy`
            np.save(f, np.ascontiguousarray(crop.crops))
    except Exception as err:  # one clip's failure, whatever it is, costs no other clip
        run.log.report(as_input_problem(src.video, err))
        return False
    run.used.add(str(src.video))
    _note(run, src.video, video.note)
    if crop.fell_back:
        run.center_fallback.append(src.clip_id)
    if crop.coverage is not None:
        run.coverage[src.clip_id] = crop.coverage
    return True


def _row(src: ClipSource, audio: media.Audio | None, video_ok: bool) -> dict[str, Any]:
    return {
        "clip_id": src.clip_id,
        "dataset": src.dataset,
        "actor": src.actor,
        "emotion": src.emotion,
        "emotion_name": EMOTIONS[src.emotion],
        "intensity": src.intensity,
        "statement": src.statement,
        "repetition": src.repetition,
        "has_video": int(video_ok),
        "has_audio": int(audio is not None),
        "frames_path": f"frames/{src.clip_id}.npy" if video_ok else "",
        "audio_path": f"audio/{src.clip_id}.wav" if audio is not None else "",
        "duration_s": round(audio.duration_s, 4) if audio is not None else np.nan,
        "loudness_db": round(audio.loudness_db, 3) if audio is not None else np.nan,
    }


def process(sources: list[ClipSource], run: _Run) -> pd.DataFrame:
    (run.out_dir / "frames").mkdir(parents=True, exist_ok=True)
    (run.out_dir / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for src in tqdm(sorted(sources, key=lambda s: s.clip_id), desc="clips", unit="clip"):
        audio = _audio(src, run) if src.audio is not None else None
        video_ok = src.video is not None and _frames(src, run)
        if audio is not None or video_ok:
            rows.append(_row(src, audio, video_ok))
    return pd.DataFrame(rows, columns=[c for c in CLIP_COLUMNS if c not in ("fold", "split")])


def face_summary(coverage: dict[str, float], cfg: ClipSettings) -> dict[str, Any]:
    """How well faces were found: mean coverage, and every clip below LOW_COVERAGE by name."""
    if cfg.crop != "face":
        return {"method": cfg.crop}
    low = {c: round(v, 4) for c, v in sorted(coverage.items()) if v < LOW_COVERAGE}
    return {
        "method": "face",
        "detector": DETECTOR,
        "mean_coverage": round(float(np.mean(list(coverage.values()))), 4) if coverage else None,
        "low_coverage_below": LOW_COVERAGE,
        "low_coverage": low,  # the crop of a clip found in no frame is the centre square
    }


def _split_summary(clips: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, Any]:
    out = {}
    for split in SPLITS:
        c, p = clips[clips.split == split], pairs[pairs.split == split]
        out[split] = {
            "actors": sorted(int(a) for a in c.actor.unique()),
            "clips": len(c),
            "audio": int(c.has_audio.sum()),
            "video": int(c.has_video.sum()),
            "emotions": {
                EMOTIONS[e]: int(n) for e, n in c.emotion.value_counts().sort_index().items()
            },
            "pairs": {k: int((p.kind == k).sum()) for k in ("congruent", "easy", "hard")},
        }
    return out


def build(
    dataset: str,
    sources: list[ClipSource],
    cfg: AVPreprocessConfig,
    out_dir: Path,
    seed: int,
    log: ProblemLog,
    notes: list[str],
    inputs: Inputs,
    extras: Callable[[pd.DataFrame], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write every product under `out_dir`; returns the report (also written as report.json).

    `inputs` accounts for every file of the raw folder in the report (`account_files`).
    `extras(clips)` writes a dataset's own products (CREMA-D's perceived set) from the final
    clip table and returns their report entries.
    """
    run = _Run(cfg, out_dir, log)
    clips = process(sources, run)
    if clips.empty:
        raise InputProblem(out_dir, "no usable clip: every input was skipped (see the messages)")
    fold_of = assign_folds(clips.actor.tolist(), cfg.folds)
    clips.insert(8, "fold", clips.actor.map(fold_of).astype(int))
    clips.insert(9, "split", clips.fold.map(lambda f: split_of(f, cfg.folds)))
    clips = clips.sort_values("clip_id").reset_index(drop=True)
    if not clips.has_video.any():
        notes.append("no video: every clip is audio-only, so there are no frames and no pairs")
    pairs = make_pairs(clips, cfg.pairs, seed)
    for name, table in (("clips.csv", clips), ("pairs.csv", pairs)):
        with atomic_path(out_dir / name) as tmp:
            table.to_csv(tmp, index=False)
    extra = extras(clips) if extras is not None else {}
    report = {
        "dataset": dataset,
        "clips": len(clips),
        "pairs": len(pairs),
        "crop": cfg.crop,
        "center_fallback": sorted(run.center_fallback),
        "faces": face_summary(run.coverage, cfg),
        "resampled": sorted(run.resampled, key=lambda r: r["path"]),
        "truncated": sorted(run.truncated, key=lambda r: (r["path"], r["note"])),
        "skipped": log.to_json(),
        "inputs": inputs.account(run.used, log),
        "notes": notes,
        "folds": {
            str(f): sorted(int(a) for a in clips[clips.fold == f].actor.unique())
            for f in range(cfg.folds.folds)
        },
        "emotions_per_fold": {
            str(f): sorted(int(e) for e in clips[clips.fold == f].emotion.unique())
            for f in range(cfg.folds.folds)
        },
        "splits": _split_summary(clips, pairs),
        # what `predict` must repeat on a new video; travels into features and checkpoints
        "settings": settings_of(cfg),
    } | extra
    write_json(out_dir / "report.json", report)
    return report
