"""How a clip's frames become square crops: `face` (detected landmarks, `data.faces`), the
older `foreground` box, or the `center` square.

`foreground` is a cheap box for studio footage: RAVDESS (white wall) and CREMA-D (plain
backdrop) film one person in front of a uniform background, so the pixels that differ from a
background model fitted to the left and right image edges find the head without a detector. The
model is linear from left to right, which absorbs uneven lighting. On a cluttered background it
covers most of the frame, which is why `face` is the default. Any method that finds nothing
falls back to the centre square, and `ClipCrop` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from affectpipe.data import faces
from affectpipe.data.media import resize_square

Crop = Literal["face", "foreground", "center"]
CROPS: tuple[str, ...] = get_args(Crop)
EDGE = 4  # columns on each side taken as background
THRESHOLD = 40.0  # max channel difference (0..255) that counts as foreground
MIN_AREA = 0.01  # foreground fraction below which detection is not trusted

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


def foreground_box(frames: np.ndarray, margin: float) -> Box | None:
    """Square box around the foreground of uint8 frames (T, H, W, 3), or None if none found."""
    mean = frames.astype(np.float32).mean(axis=0)  # (H, W, 3): averaging frames damps noise
    h, w, _ = mean.shape
    left, right = mean[:, :EDGE].mean(axis=(0, 1)), mean[:, -EDGE:].mean(axis=(0, 1))
    ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)[:, None]  # (W, 1)
    background = left[None, :] * (1 - ramp) + right[None, :] * ramp  # (W, 3)
    mask = np.abs(mean - background[None]).max(axis=2) > THRESHOLD  # (H, W)
    if mask.mean() < MIN_AREA:
        return None
    rows = np.flatnonzero(mask.sum(axis=1) > 0.02 * w)
    cols = np.flatnonzero(mask.sum(axis=0) > 0.02 * h)
    if rows.size == 0 or cols.size == 0:
        return None
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = int(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin)))
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    return (cx - side // 2, cy - side // 2, cx - side // 2 + side, cy - side // 2 + side)


def center_box(height: int, width: int) -> Box:
    side = min(height, width)
    x0, y0 = (width - side) // 2, (height - side) // 2
    return (x0, y0, x0 + side, y0 + side)


def crop_resize(frames: np.ndarray, boxes: list[Box], size: int) -> np.ndarray:
    """Crop each frame to its box (edge-padded where it leaves the image), resize to a square.

    (T, H, W, 3) uint8 -> (T, size, size, 3) uint8.
    """
    _, h, w, _ = frames.shape
    out = []
    for frame, (x0, y0, x1, y1) in zip(frames, boxes, strict=True):
        pad = max(0, -x0, -y0, x1 - w, y1 - h)
        padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        out.append(resize_square(padded[y0 + pad : y1 + pad, x0 + pad : x1 + pad], size))
    return np.stack(out)


@dataclass(frozen=True)
class ClipCrop:
    """A clip's crops and how they were made: what preprocessing reports and `predict` shows."""

    crops: np.ndarray  # (T, size, size, 3) uint8
    boxes: list[Box]  # per frame, the pixel box cropped
    method: str  # the method asked for
    used: str  # what made the boxes: the method, or "center" when it found nothing
    coverage: float | None  # `face`: share of frames where the detector found the subject
    detected: list[bool] | None  # `face`: per frame, found by the detector (not filled in)
    crops_from: tuple[int, int]  # (H, W) of the frames the boxes are in

    @property
    def fell_back(self) -> bool:
        return self.used != self.method


def join_crops(parts: list[ClipCrop]) -> ClipCrop:
    """One record of a video cropped chunk by chunk (`predict` holds one window at a time):
    boxes and detections in order, coverage over all frames, `used` the method if any chunk
    found the subject. The crops themselves are not kept (they are embedded chunk by chunk)."""
    first = parts[0]
    found = [p for p in parts if not p.fell_back]
    detected = None
    if all(p.detected is not None for p in parts):
        detected = [d for p in parts for d in p.detected]
    coverage = None if detected is None else sum(detected) / len(detected)
    return ClipCrop(
        crops=first.crops[:0],
        boxes=[b for p in parts for b in p.boxes],
        method=first.method,
        used=first.method if found else "center",
        coverage=coverage,
        detected=detected,
        crops_from=first.crops_from,
    )


def _hold(boxes: list[faces.Box | None]) -> list[Box]:
    """Every frame gets a box: one with none takes the nearest frame's (a clip needs T crops)."""
    known = [t for t, b in enumerate(boxes) if b is not None]
    out = []
    for t in range(len(boxes)):
        x0, y0, x1, y1 = boxes[min(known, key=lambda k: (abs(k - t), k))]
        out.append((round(x0), round(y0), round(x1), round(y1)))
    return out


def crop_clip(frames: np.ndarray, method: str, size: int, margin: float) -> ClipCrop:
    """Crop a clip's frames (T, H, W, 3) by `method`; the centre square where it finds nothing."""
    if method not in CROPS:
        raise ValueError(f"unknown crop '{method}'; valid: {list(CROPS)}")
    t_n, h, w, _ = frames.shape
    boxes: list[Box] | None = None
    coverage = detected = None
    if method == "face":
        track = faces.track(frames, margin)
        coverage, detected = track.coverage, track.detected
        if any(b is not None for b in track.boxes):
            boxes = _hold(track.boxes)
    elif method == "foreground":
        box = foreground_box(frames, margin)
        boxes = None if box is None else [box] * t_n
    used = method if boxes is not None else "center"
    if boxes is None:
        boxes = [center_box(h, w)] * t_n
    crops = crop_resize(frames, boxes, size)
    return ClipCrop(crops, boxes, method, used, coverage, detected, (h, w))
