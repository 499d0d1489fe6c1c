"""AFEW-VA: materialise the raw folder, read its annotations, crop faces, split by actor.

Layout of the official release: one folder per clip, `NNN/NNNNN.png` frames and `NNN/NNN.json`
with `actor`, `video_id` and `frames -> {valence, arousal, landmarks}` on the -10..10 scale. Every
problem is either raised (`strict`) or recorded with its reason (`skip`): a frame without a PNG,
a PNG without a label, a malformed or out-of-range label, a broken image, an empty clip.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from affectpipe.config import params_section
from affectpipe.data.faces import landmark_box
from affectpipe.data.fetch import (
    MANIFEST,
    MANIFEST_NOTE,
    check_source_path,
    no_release,
    source_folder,
    start_clean,
    write_manifest,
)
from affectpipe.data.splits import SPLITS, SplitConfig, assign_actor_splits
from affectpipe.data.synthetic.afewva import SyntheticAfewvaConfig, write_synthetic_afewva
from affectpipe.data.synthetic.faces import N_LANDMARKS
from affectpipe.problems import (
    InputProblem,
    Policy,
    ProblemLog,
    account_files,
    atomic_path,
    files_under,
    write_json,
)

VA_SCALE = 10.0  # labels are -10..10; divided by 10 into [-1, 1] as is common practice
FPS = 25.0  # the release's frames are consecutive video frames, 25 per second
FRAME_COLUMNS = [
    "clip", "frame", "crop_path", "valence", "arousal", "actor",
    "box_x0", "box_y0", "box_x1", "box_y1", "split",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# download


@params_section
class DownloadConfig:
    source: Literal["synthetic", "folder", "zips"]
    path: str  # folder in the AFEW-VA layout, or holding the official zips (a dep either way)
    synthetic: SyntheticAfewvaConfig

    def __post_init__(self) -> None:
        check_source_path(self.path, "afewva")


def is_clip_dir(path: Path) -> bool:
    return path.is_dir() and path.name.isdigit() and len(path.name) == 3


def find_afewva_root(folder: Path) -> Path:
    """The folder that holds the `NNN/` clip folders (it may be nested one level, `AFEW-VA/`)."""
    for candidate in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        clips = [p for p in candidate.iterdir() if is_clip_dir(p)]
        if any((p / f"{p.name}.json").exists() for p in clips):
            return candidate
    raise InputProblem(
        folder, "not an AFEW-VA folder: no 'NNN/NNN.json' clip folders in it or one level down"
    )


def copy_tree(src: Path, dst: Path) -> None:
    """Hard-link the files when possible (same disk, no copy), else copy; never modify `src`."""
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def extract_zips(folder: Path, dst: Path) -> None:
    """Unpack the official zips (about 50 clips each) into `dst`, flattening any top folder."""
    zips = sorted(folder.glob("*.zip"))
    if not zips:
        raise no_release(folder, "afewva", "official AFEW-VA zips (*.zip)")
    staging = dst.parent / f".{dst.name}.unzip"
    shutil.rmtree(staging, ignore_errors=True)
    for archive in tqdm(zips, desc="unzip AFEW-VA", unit="zip"):
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(staging)
        except zipfile.BadZipFile as err:
            raise InputProblem(archive, f"not a valid zip file ({err})") from err
    root = find_afewva_root(staging)
    for clip in sorted(p for p in root.iterdir() if is_clip_dir(p)):
        shutil.move(str(clip), dst / clip.name)
    shutil.rmtree(staging)


def download(cfg: DownloadConfig, out_dir: Path) -> None:
    """Materialise `out_dir` (data/raw/afewva) from the configured source, plus its manifest."""
    if cfg.source == "synthetic":
        start_clean(out_dir, None, None)
        write_synthetic_afewva(cfg.synthetic, out_dir)
    else:
        src = source_folder(cfg.path, "afewva")
        if cfg.source == "folder":
            try:
                root = find_afewva_root(src)
            except InputProblem:
                holds = "AFEW-VA clip folders (NNN/NNN.json and frames, here or one level down)"
                raise no_release(src, "afewva", holds) from None
            start_clean(out_dir, None, src)  # only once the source is known to hold clips
            for clip in sorted(p for p in root.iterdir() if is_clip_dir(p)):  # not a README
                copy_tree(clip, out_dir / clip.name)
        else:
            start_clean(out_dir, None, src)
            extract_zips(src, out_dir)
    write_manifest(out_dir, sorted(p for p in out_dir.rglob("*") if p.is_file()))


# ---------------------------------------------------------------------------------------------
# reading annotations


@dataclass(frozen=True)
class FrameLabel:
    frame: int
    valence: float  # [-1, 1]
    arousal: float  # [-1, 1]
    landmarks: np.ndarray  # (68, 2) pixels


MIN_FACE_PX = 8  # a landmark box smaller than this (pixels a side) holds no usable face
MIN_FACE_INSIDE = 0.5  # share of the face box that must lie inside the image
MAX_LANDMARK_PX = 100_000  # larger coordinates are no pixel position of any video frame


def _short(value: Any, limit: int = 24) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _label_value(value: Any, name: str, where: str, json_path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputProblem(json_path, f"frame {where}: {name} is {_short(value)}, not a number")
    # compared as given: a 400-digit integer does not fit a float, and NaN fails every test
    if not -VA_SCALE <= value <= VA_SCALE:
        raise InputProblem(json_path, f"frame {where}: {name} {_short(value)} outside -10..10")
    return float(value) / VA_SCALE


def _landmarks(value: Any, where: str, json_path: Path) -> np.ndarray:
    if value is None:
        raise InputProblem(json_path, f"frame {where}: no landmarks")
    try:
        points = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as err:  # OverflowError: a 400-digit integer
        raise InputProblem(json_path, f"frame {where}: landmarks are not pixel numbers") from err
    if points.shape != (N_LANDMARKS, 2) or not np.isfinite(points).all():
        raise InputProblem(
            json_path, f"frame {where}: landmarks shape {points.shape}, expected (68, 2) numbers"
        )
    largest = float(np.abs(points).max())
    if largest > MAX_LANDMARK_PX:
        raise InputProblem(
            json_path, f"frame {where}: landmark coordinate {_short(largest)} is no pixel position"
        )
    return points


class _DuplicateKeys(dict):
    """A JSON object that remembers the keys it saw more than once (json keeps the last)."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = _DuplicateKeys(pairs)
    obj.duplicates = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return obj


def read_annotation(json_path: Path, log: ProblemLog) -> tuple[str, dict[str, FrameLabel]]:
    """Parse one `NNN.json`: (actor, {frame key: label}). Bad frames go to `log`; a frame key
    given twice is ambiguous, so neither of its entries is used."""
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"), object_pairs_hook=_object)
    except RecursionError as err:
        raise InputProblem(json_path, "not an AFEW-VA annotation: JSON nested too deeply") from err
    except (ValueError, UnicodeDecodeError) as err:  # incl. JSONDecodeError, huge integers
        raise InputProblem(json_path, f"not valid JSON ({str(err)[:200]})") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), dict):
        raise InputProblem(json_path, "no 'frames' object: not an AFEW-VA annotation file")
    actor = doc.get("actor")
    if not isinstance(actor, str) or not actor.strip():
        raise InputProblem(json_path, f"'actor' is {actor!r}; actor-disjoint splits need it")
    labels: dict[str, FrameLabel] = {}
    duplicates = set(getattr(doc["frames"], "duplicates", []))
    for key, entry in sorted(doc["frames"].items()):
        try:
            if key in duplicates:
                raise InputProblem(json_path, f"frame {key!r}: the key appears more than once")
            if not (key.isascii() and key.isdigit() and isinstance(entry, dict)):
                raise InputProblem(json_path, f"frame {key!r}: not a 5-digit key with an object")
            labels[key] = FrameLabel(
                frame=int(key),
                valence=_label_value(entry.get("valence"), "valence", key, json_path),
                arousal=_label_value(entry.get("arousal"), "arousal", key, json_path),
                landmarks=_landmarks(entry.get("landmarks"), key, json_path),
            )
        except InputProblem as problem:
            log.report(problem)
    return actor.strip(), labels


# ---------------------------------------------------------------------------------------------
# preprocessing


@params_section
class PreprocessConfig:
    crop_size: int  # face crops are square
    margin: float  # grow the landmark box by this fraction of its side
    bad_input: Policy
    workers: int  # processes decoding and cropping frames
    split: SplitConfig

    def __post_init__(self) -> None:
        if self.crop_size < 8:
            raise ValueError(f"preprocess.afewva.crop_size must be >= 8, got {self.crop_size}")


@dataclass(frozen=True)
class CropJob:
    clip: str
    key: str
    src: Path
    dst: Path
    box: tuple[float, float, float, float]
    size: int


def box_problem(box: tuple[float, float, float, float], width: int, height: int) -> str | None:
    """Why the landmark box cannot be a face in a `width` x `height` image, or None.

    Landmarks may run a little past the border (a face cut by the frame edge), but a box
    mostly outside the image, tiny, or of non-finite size would train on black pixels."""
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box) or x1 - x0 < MIN_FACE_PX or y1 - y0 < MIN_FACE_PX:
        return f"landmarks give no usable face box ({_short(tuple(round(v, 1) for v in box))})"
    inside_w = max(0.0, min(x1, width) - max(x0, 0.0))
    inside_h = max(0.0, min(y1, height) - max(y0, 0.0))
    if inside_w * inside_h < MIN_FACE_INSIDE * (x1 - x0) * (y1 - y0):
        return (f"landmarks outside the {width}x{height} image (face box "
                f"{tuple(round(v, 1) for v in box)})")  # fmt: skip
    return None


def crop_face(job: CropJob) -> str | None:
    """Crop and resize one face; returns the problem text instead of raising (runs in a pool):
    whatever goes wrong with one frame costs that frame alone."""
    try:
        with Image.open(job.src) as img:
            problem = box_problem(job.box, *img.size)
            if problem is not None:
                return problem
            img = img.convert("RGB")
            crop = img.crop(tuple(round(v) for v in job.box))  # outside the frame: black
    except Image.DecompressionBombError as err:
        return f"image too large to decode safely ({err})"
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        return f"unreadable image ({type(err).__name__}: {err})"
    except Exception as err:  # noqa: BLE001 - isolate the frame, keep the reason
        return f"cannot crop ({type(err).__name__}: {err})"
    crop = crop.resize((job.size, job.size), Image.Resampling.BILINEAR)
    with atomic_path(job.dst) as tmp:  # a full disk is the run's error, not this frame's
        crop.save(tmp, format="PNG", optimize=False)
    return None


def plan_clip(clip_dir: Path, out_dir: Path, cfg: PreprocessConfig, log: ProblemLog):
    """Match frames and labels of one clip; returns (actor, [(CropJob, FrameLabel)])."""
    json_path = clip_dir / f"{clip_dir.name}.json"
    pngs = {p.stem: p for p in clip_dir.glob("*.png")}
    if not pngs and not json_path.exists():
        log.report(InputProblem(clip_dir, "empty clip folder: no frames and no annotation"))
        return None, []
    if not json_path.exists():
        log.report(InputProblem(clip_dir, f"{len(pngs)} frames but no {json_path.name}"))
        return None, []
    try:
        actor, labels = read_annotation(json_path, log)
    except InputProblem as problem:
        log.report(
            InputProblem(problem.path, f"{problem.problem}; clip skipped ({len(pngs)} frames)")
        )
        return None, []
    for key in sorted(set(pngs) - set(labels)):
        log.report(InputProblem(pngs[key], "frame has no usable annotation"))
    for key in sorted(set(labels) - set(pngs)):
        log.report(InputProblem(clip_dir / f"{key}.png", "annotated frame has no PNG"))
    jobs = []
    for key in sorted(set(labels) & set(pngs)):
        label = labels[key]
        dst = out_dir / "crops" / clip_dir.name / f"{key}.png"
        box = landmark_box(label.landmarks, cfg.margin)
        jobs.append((CropJob(clip_dir.name, key, pngs[key], dst, box, cfg.crop_size), label))
    return actor, jobs


def _json(clip_dir: Path) -> Path:
    return clip_dir / f"{clip_dir.name}.json"


def left_alone(path: Path, raw_dir: Path, root: Path, skipped: set[str]) -> str | None:
    """Why a raw file that reached no crop and has no skip of its own was left alone; None when
    there is no reason (it is then `unaccounted` in the report)."""
    if path == raw_dir / MANIFEST:
        return MANIFEST_NOTE
    if not path.is_relative_to(root):
        return f"outside the AFEW-VA folder {root.name}/ (clip folders are read there)"
    parts = path.relative_to(root).parts
    if not parts:
        return None
    clip = root / parts[0]
    if len(parts) == 1 or not is_clip_dir(clip):
        return f"inside {parts[0]}/, not an AFEW-VA clip folder" if len(parts) > 1 else None
    if len(parts) > 2:
        return "in a subfolder of a clip folder: frames and annotation lie in the clip folder"
    if path.suffix != ".png" and path.name != f"{clip.name}.json":
        return f"not a frame (NNNNN.png) or the clip's annotation ({clip.name}.json)"
    if path.suffix == ".png" and ({str(clip), str(clip / f"{clip.name}.json")} & skipped):
        return f"its clip is skipped: see the reason recorded for {clip.name}/"
    return None


def preprocess(cfg: PreprocessConfig, raw_dir: Path, out_dir: Path, seed: int) -> dict[str, Any]:
    """Raw AFEW-VA folder -> face crops, `frames.csv` with actor-disjoint splits, `report.json`.

    `seed` is not used: the split has its own `split.seed`."""
    log = ProblemLog(cfg.bad_input)
    root = find_afewva_root(raw_dir)
    others = sorted(p.name for p in root.iterdir() if not is_clip_dir(p) and p.name != MANIFEST)
    for name in others:
        log.report(InputProblem(root / name, "not an AFEW-VA clip folder (expected NNN/)"))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    planned: list[tuple[str, CropJob, FrameLabel]] = []
    clip_dirs = sorted(p for p in root.iterdir() if is_clip_dir(p))
    for clip_dir in clip_dirs:
        actor, jobs = plan_clip(clip_dir, out_dir, cfg, log)
        planned += [(actor, job, label) for job, label in jobs]

    rows = []
    with ProcessPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        results = pool.map(crop_face, [job for _, job, _ in planned], chunksize=32)
        bar = tqdm(
            zip(planned, results, strict=True), total=len(planned), desc="crop faces", unit="frame"
        )
        for (actor, job, label), problem in bar:
            if problem is not None:
                log.report(InputProblem(job.src, problem))
                continue
            rows.append(
                {
                    "clip": job.clip,
                    "frame": label.frame,
                    "crop_path": job.dst.relative_to(out_dir).as_posix(),
                    "valence": label.valence,
                    "arousal": label.arousal,
                    "actor": actor,
                    **dict(zip(("box_x0", "box_y0", "box_x1", "box_y1"), job.box, strict=True)),
                }
            )
    with_rows, said = {row["clip"] for row in rows}, {s["path"] for s in log.skipped}
    for clip_dir in clip_dirs:  # a clip that lost every frame is itself on record
        if clip_dir.name not in with_rows and not {str(clip_dir), str(_json(clip_dir))} & said:
            log.report(InputProblem(_json(clip_dir), "no usable frame: clip skipped"))
    if not rows:
        raise InputProblem(raw_dir, "no usable frames at all (see the skipped inputs above)")
    table = pd.DataFrame(rows)
    table["split"] = table["actor"].map(assign_actor_splits(table["actor"], cfg.split))
    table = table[FRAME_COLUMNS].sort_values(["clip", "frame"], ignore_index=True)
    with atomic_path(out_dir / "frames.csv") as tmp:
        table.round({c: 3 for c in ("box_x0", "box_y0", "box_x1", "box_y1")}).to_csv(
            tmp, index=False
        )
    skipped = {s["path"] for s in log.skipped}
    used = {str(job.src) for _, job, _ in planned} - skipped
    used |= {str(root / clip / f"{clip}.json") for clip in table["clip"].unique()}
    files, ignored, done = files_under(raw_dir), {}, used | skipped
    for path in files:
        why = None if str(path) in done else left_alone(path, raw_dir, root, skipped)
        if why is not None:
            ignored[str(path)] = why
    report = {
        "splits": split_summary(table),
        "frames_used": len(table),
        "skipped": log.to_json(),
        "inputs": account_files(files, used, log, ignored),
        "bad_input_policy": cfg.bad_input,
        # what `predict` must repeat on a new video; travels into features and checkpoints
        # (fps: the time scale of the frames, so predict feeds VA windows at the same rate)
        "settings": {"crop_size": cfg.crop_size, "margin": cfg.margin, "fps": FPS},
    }
    write_json(out_dir / "report.json", report)
    return report


def split_summary(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per split: clips, frames, actors and the VA ranges (to spot a degenerate split)."""
    summary = {}
    for split in SPLITS:
        part = table[table["split"] == split]
        summary[split] = {
            "clips": int(part["clip"].nunique()),
            "frames": len(part),
            "actors": sorted(part["actor"].unique().tolist()),
            **{
                f"{dim}_{stat}": round(float(getattr(part[dim], stat)()), 4) if len(part) else None
                for dim in ("valence", "arousal")
                for stat in ("min", "max", "mean")
            },
        }
    return summary
