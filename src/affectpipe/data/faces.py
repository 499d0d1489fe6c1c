"""Faces found as in face-analysis research: a pretrained detector, 68 landmarks, a landmark box.

dlib's HOG frontal-face detector finds faces and its 68-point shape predictor (iBUG 300-W, the
scheme AFEW-VA annotates) places landmarks; both ship as files inside installed packages
(`dlib-bin`, `face-recognition-models`), so nothing is downloaded at run time. The crop box is
`landmark_box`: the square around the 68 landmarks grown by a margin, AFEW-VA's convention, and
the one function every dataset, `predict` and the demo crop with (docs/faces.md compares the
detectors measured and says why this one).

Over a clip, `track` keeps one subject: the largest, most central face, followed from frame to
frame by overlap with its last box so that a second person never takes its place; short gaps
are interpolated, boxes smoothed over time, and `coverage` says in what share of the frames the
detector itself found that subject.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels (x1, y1 exclusive)

DETECT_SIDE = 320  # frames are resized to this longer side for detection (landmarks: own size)
UPSAMPLE = (0, 1)  # pyramid upsampling tried in turn: 0 finds faces from ~80 px, 1 from ~40
MIN_IOU = 0.2  # overlap with the subject's last box that keeps its identity
MAX_JUMP = 0.5  # or: centre moved less than this share of the box side per frame since seen
MAX_GAP = 4  # missed frames between two detections that are interpolated
SMOOTH = 3  # centred moving average (frames) over box centre and side
PREDICTOR = "shape_predictor_68_face_landmarks.dat"
DETECTOR = "dlib HOG frontal face detector + 68-point shape predictor"  # as reports name it


@dataclass(frozen=True)
class Face:
    """One detected face: its landmark box (with margin), its 68 landmarks (x, y)."""

    box: Box
    landmarks: np.ndarray  # (68, 2) float32


@dataclass(frozen=True)
class FaceTrack:
    """One subject over a clip's frames."""

    boxes: list[Box | None]  # per frame: detected, interpolated or smoothed; None: no face
    detected: list[bool]  # per frame: the detector found the subject in this very frame
    n_faces: list[int]  # per frame: faces the detector found (the subject and anyone else)

    @property
    def coverage(self) -> float:
        """Share of frames in which the detector found the subject."""
        return float(np.mean(self.detected)) if self.detected else 0.0


def landmark_box(landmarks: np.ndarray, margin: float) -> Box:
    """Square box around the landmarks, grown by `margin` of its side on each side (AFEW-VA)."""
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    side = float(max(x1 - x0, y1 - y0)) * (1 + 2 * margin)
    mx, my = float(x0 + x1) / 2, float(y0 + y1) / 2
    return (mx - side / 2, my - side / 2, mx + side / 2, my + side / 2)


def model_dir() -> Path:
    """Folder of the `face-recognition-models` weights, found without importing the package
    (its __init__ needs `pkg_resources`, which current setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face detection needs the 'face-recognition-models' package")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@cache
def _dlib():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model_dir() / PREDICTOR))


def detect(frame: np.ndarray, margin: float) -> list[Face]:
    """Every face in an RGB uint8 frame (H, W, 3), largest first."""
    detector, predictor = _dlib()
    h, w = frame.shape[:2]
    scale = DETECT_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(
        Image.fromarray(np.ascontiguousarray(frame)).resize(size, Image.Resampling.BILINEAR)
    )
    faces = []
    rects = []
    for upsample in UPSAMPLE:  # the cheap pass first; the finer one only when it finds nothing
        rects = detector(small, upsample)
        if rects:
            break
    for r in rects:  # landmarks on the detection frame, mapped back to the frame's pixels
        lm = np.array([(p.x, p.y) for p in predictor(small, r).parts()], dtype=np.float32)
        lm /= scale
        faces.append(Face(landmark_box(lm, margin), lm))
    return sorted(faces, key=lambda f: -_side(f.box))


def _side(b: Box) -> float:
    return b[2] - b[0]


def _centre(b: Box) -> np.ndarray:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = _side(a) * (a[3] - a[1]) + _side(b) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _salience(b: Box, height: int, width: int) -> float:
    """Largest and most central wins: box side times closeness of its centre to the image's."""
    off = np.linalg.norm((_centre(b) - (width / 2, height / 2)) / (width / 2, height / 2))
    return _side(b) * max(0.0, 1.0 - off / np.sqrt(2))


def _same(last: Box, cand: Box, frames_since: int) -> float | None:
    """How well `cand` continues the subject last seen at `last` (higher is better), or None."""
    o = iou(last, cand)
    if o >= MIN_IOU:
        return 1.0 + o
    jump = np.linalg.norm(_centre(cand) - _centre(last)) / _side(last)
    ratio = _side(cand) / _side(last)
    if jump < MAX_JUMP * frames_since and 0.67 < ratio < 1.5:
        return 1.0 - jump / (MAX_JUMP * frames_since)
    return None


def _follow(faces: list[list[Face]], start: int, order: range) -> dict[int, Box]:
    kept: dict[int, Box] = {start: faces[start][0].box}  # the anchor, alone in its frame
    last, seen = kept[start], start
    for t in order:
        scored = [(s, f.box) for f in faces[t] if (s := _same(last, f.box, abs(t - seen)))]
        if scored:
            last, seen = max(scored)[1], t
            kept[t] = last
    return kept


def track(frames: np.ndarray | list[np.ndarray], margin: float) -> FaceTrack:
    """Detect in every frame (T, H, W, 3) and follow one subject; see the module docstring."""
    faces = [detect(f, margin) for f in frames]
    t_n = len(faces)
    if not any(faces):
        return FaceTrack([None] * t_n, [False] * t_n, [0] * t_n)
    h, w = frames[0].shape[:2]
    anchor_t, anchor = max(
        ((t, f) for t, fs in enumerate(faces) for f in fs),
        key=lambda tf: _salience(tf[1].box, h, w),
    )
    counts = [len(fs) for fs in faces]
    faces = [list(fs) for fs in faces]
    faces[anchor_t] = [anchor]
    kept = _follow(faces, anchor_t, range(anchor_t + 1, t_n))
    kept |= _follow(faces, anchor_t, range(anchor_t - 1, -1, -1))
    boxes = _smooth(_fill_gaps([kept.get(t) for t in range(t_n)]))
    return FaceTrack(boxes, [t in kept for t in range(t_n)], counts)


def _fill_gaps(boxes: list[Box | None]) -> list[Box | None]:
    """Interpolate runs of at most MAX_GAP missing boxes between two found ones."""
    out = list(boxes)
    known = [t for t, b in enumerate(boxes) if b is not None]
    for a, b in zip(known, known[1:], strict=False):
        if 1 < b - a <= MAX_GAP + 1:
            for t in range(a + 1, b):
                k = (t - a) / (b - a)
                out[t] = tuple((1 - k) * p + k * q for p, q in zip(boxes[a], boxes[b], strict=True))
    return out


def _smooth(boxes: list[Box | None]) -> list[Box | None]:
    """Centred moving average of each box's centre and side over SMOOTH frames (runs only)."""
    out: list[Box | None] = list(boxes)
    half = SMOOTH // 2
    for t, b in enumerate(boxes):
        if b is None:
            continue
        near = [
            boxes[u] for u in range(max(0, t - half), min(len(boxes), t + half + 1)) if boxes[u]
        ]
        c = np.mean([_centre(n) for n in near], axis=0)
        s = float(np.mean([_side(n) for n in near])) / 2
        out[t] = (float(c[0]) - s, float(c[1]) - s, float(c[0]) + s, float(c[1]) + s)
    return out
