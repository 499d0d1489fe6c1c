"""Cheap face boxes for studio footage: the subject against a plain background.

RAVDESS (white wall) and CREMA-D (plain backdrop), like the synthetic look-alikes, film one
person in front of a uniform background, so the foreground box (pixels that differ from a
background model fitted to the left and right image edges) finds the head without a face
detector. The model is linear from left to right, which absorbs uneven lighting. When too little
foreground is found the crop falls back to the centre square, and the caller records it.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from affectpipe.data.media import resize_square

Crop = Literal["foreground", "center"]
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


def crop_resize(frames: np.ndarray, box: Box, size: int) -> np.ndarray:
    """Crop every frame to `box` (edge-padded where it leaves the image), resize to a square.

    (T, H, W, 3) uint8 -> (T, size, size, 3) uint8.
    """
    x0, y0, x1, y1 = box
    _, h, w, _ = frames.shape
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    crops = padded[:, y0 + pad : y1 + pad, x0 + pad : x1 + pad]
    return np.stack([resize_square(c, size) for c in crops])


def crop_clip(frames: np.ndarray, method: str, size: int, margin: float) -> tuple[np.ndarray, bool]:
    """Face-crop (or centre-crop) a clip's frames; returns (crops, fell_back_to_center)."""
    if method not in CROPS:
        raise ValueError(f"unknown crop '{method}'; valid: {list(CROPS)}")
    box = foreground_box(frames, margin) if method == "foreground" else None
    fell_back = method == "foreground" and box is None
    if box is None:
        box = center_box(frames.shape[1], frames.shape[2])
    return crop_resize(frames, box, size), fell_back
