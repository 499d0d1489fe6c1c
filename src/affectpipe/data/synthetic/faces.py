"""Procedurally drawn faces whose expression carries a known affective signal.

The synthetic datasets need images from which valence, arousal and emotion can be *learned*
(not read off a pixel), under the nuisance variation that makes real data hard: identity,
position, scale, lighting and sensor noise. A face is drawn from 68 iBUG-scheme landmarks, so
the landmarks written to the annotation files are the geometry actually drawn.

Expression -> geometry (why these): mouth-corner height follows valence (smile/frown), eye and
mouth opening and brow height follow arousal, and brow tilt separates emotions that sit close in
the valence-arousal plane (anger lowers the inner brows, sadness and fear raise them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

N_LANDMARKS = 68
# Small frames are drawn at 2x and downsampled (cheap anti-aliasing); from 640 px up an edge
# spans enough pixels without it, and drawing 720p at 2x cost most of a frame's time.
_SUPERSAMPLE = 2
_SUPERSAMPLE_BELOW = 640


@dataclass(frozen=True)
class Expression:
    """Facial action amplitudes, each roughly in [-1, 1] (openings in [0, 1])."""

    mouth_curve: float = 0.0  # +1 smile, -1 frown
    mouth_open: float = 0.2
    eye_open: float = 0.5
    brow_raise: float = 0.0  # +1 raised, -1 lowered
    brow_tilt: float = 0.0  # +1 inner ends up (sad/fear), -1 inner ends down (anger)


def expression_from_va(valence: float, arousal: float) -> Expression:
    """Map valence/arousal in [-1, 1] to an expression, smoothly and monotonically."""
    v = float(np.clip(valence, -1.0, 1.0))
    a = float(np.clip(arousal, -1.0, 1.0))
    return Expression(
        mouth_curve=v,
        mouth_open=0.1 + 0.45 * (a + 1) / 2 + 0.15 * max(v, 0.0) * (a + 1) / 2,
        eye_open=0.2 + 0.7 * (a + 1) / 2,
        brow_raise=0.8 * a,
        brow_tilt=-0.4 * v * (a + 1) / 2,
    )


@dataclass(frozen=True)
class Identity:
    """Per-actor face shape and colouring: constant across an actor's clips."""

    aspect: float  # face height / width
    eye_spacing: float  # eye centre offset as a fraction of face half-width
    mouth_width: float  # mouth half-width as a fraction of face half-width
    brow_thickness: float
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]

    @staticmethod
    def sample(rng: np.random.Generator) -> Identity:
        tone = rng.uniform(0.35, 1.0)
        skin = (int(120 + 120 * tone), int(85 + 110 * tone), int(60 + 100 * tone))
        hair = tuple(int(c) for c in rng.integers(10, 120, size=3))
        return Identity(
            aspect=float(rng.uniform(1.15, 1.45)),
            eye_spacing=float(rng.uniform(0.36, 0.48)),
            mouth_width=float(rng.uniform(0.45, 0.58)),
            brow_thickness=float(rng.uniform(0.06, 0.09)),
            skin=skin,
            hair=hair,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Nuisance:
    """Per-frame (or per-clip) viewing conditions that carry no affect."""

    cx: float  # face centre, fraction of image width
    cy: float  # face centre, fraction of image height
    scale: float  # face half-width, fraction of image width
    light: float  # overall brightness gain
    light_slope: float  # left-to-right brightness gradient
    noise: float  # std of additive Gaussian noise (0..255 scale)
    background: tuple[int, int, int]

    @staticmethod
    def sample(rng: np.random.Generator) -> Nuisance:
        return Nuisance(
            cx=float(rng.uniform(0.4, 0.6)),
            cy=float(rng.uniform(0.42, 0.58)),
            scale=float(rng.uniform(0.18, 0.26)),
            light=float(rng.uniform(0.7, 1.15)),
            light_slope=float(rng.uniform(-0.3, 0.3)),
            noise=float(rng.uniform(2.0, 8.0)),
            background=tuple(int(c) for c in rng.integers(20, 200, size=3)),  # type: ignore[arg-type]
        )

    def jitter(self, rng: np.random.Generator, amount: float = 0.004) -> Nuisance:
        """Small frame-to-frame head motion, as in real footage."""
        return Nuisance(
            cx=self.cx + float(rng.normal(0, amount)),
            cy=self.cy + float(rng.normal(0, amount)),
            scale=self.scale * float(1 + rng.normal(0, amount)),
            light=self.light,
            light_slope=self.light_slope,
            noise=self.noise,
            background=self.background,
        )


def face_landmarks(
    expr: Expression, ident: Identity, nuis: Nuisance, width: int, height: int
) -> np.ndarray:
    """The 68 iBUG landmarks (x, y) in pixels for this face. Shape (68, 2)."""
    cx, cy = nuis.cx * width, nuis.cy * height
    a = nuis.scale * width  # face half-width
    b = a * ident.aspect  # face half-height
    pts = np.zeros((N_LANDMARKS, 2))

    # jaw 0-16: lower half of the face ellipse, left ear -> chin -> right ear
    phi = np.linspace(np.pi, 0.0, 17)
    pts[0:17] = np.stack([cx + a * np.cos(phi), cy + 0.1 * b + 0.9 * b * np.sin(phi)], 1)

    # brows 17-21 (left, outer->inner) and 22-26 (right, inner->outer)
    brow_y = cy - 0.40 * b - 0.16 * b * expr.brow_raise
    t = np.linspace(0.0, 1.0, 5)  # 0 = outer end, 1 = inner end
    for sign, sl, order in ((-1, slice(17, 22), t), (1, slice(22, 27), t[::-1])):
        xs = cx + sign * a * (ident.eye_spacing + 0.26 - 0.42 * order)
        ys = brow_y - 0.04 * b * np.sin(np.pi * order) - 0.16 * b * expr.brow_tilt * order
        pts[sl] = np.stack([xs, ys], 1)

    # nose: bridge 27-30, base 31-35
    pts[27:31] = np.stack([np.full(4, cx), cy + np.linspace(-0.25, 0.12, 4) * b], 1)
    pts[31:36] = np.stack([cx + np.linspace(-0.14, 0.14, 5) * a, np.full(5, cy + 0.17 * b)], 1)

    # eyes 36-41 (left) and 42-47 (right): six points around an ellipse
    eye_w, eye_h = 0.22 * a, (0.02 + 0.13 * float(np.clip(expr.eye_open, 0, 1))) * b
    ang = np.array(
        [np.pi, 2 * np.pi / 3 + np.pi, 4 * np.pi / 3 + np.pi, 0.0, np.pi / 3, 2 * np.pi / 3]
    )
    for sign, start in ((-1, 36), (1, 42)):
        ex, ey = cx + sign * ident.eye_spacing * a, cy - 0.2 * b
        pts[start : start + 6] = np.stack([ex + eye_w * np.cos(ang), ey + eye_h * np.sin(ang)], 1)

    # mouth: outer 48-59, inner 60-67; corners rise with mouth_curve, lips part with mouth_open
    mx, my, mw = cx, cy + 0.5 * b, ident.mouth_width * a
    bend = 0.24 * b * float(np.clip(expr.mouth_curve, -1, 1))
    gap = 0.30 * b * float(np.clip(expr.mouth_open, 0, 1))

    def lip(x: np.ndarray, offset: float) -> np.ndarray:
        y = my - bend * (x**2 - 0.35) + offset * (1 - x**2)
        return np.stack([mx + mw * x, y], 1)

    outer_top = lip(np.linspace(-1, 1, 7), -gap / 2 - 0.05 * b)  # 48..54
    outer_bot = lip(np.linspace(1, -1, 7)[1:-1], gap / 2 + 0.06 * b)  # 55..59
    inner_top = lip(np.linspace(-0.8, 0.8, 5), -gap / 2)  # 60..64
    inner_bot = lip(np.linspace(0.8, -0.8, 5)[1:-1], gap / 2)  # 65..67
    pts[48:55], pts[55:60] = outer_top, outer_bot
    pts[60:65], pts[65:68] = inner_top, inner_bot
    return pts


def render_face(
    expr: Expression,
    ident: Identity,
    nuis: Nuisance,
    width: int,
    height: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one face. Returns (image uint8 (H, W, 3), landmarks float (68, 2) in pixels)."""
    lm = face_landmarks(expr, ident, nuis, width, height)
    s = _SUPERSAMPLE if max(width, height) < _SUPERSAMPLE_BELOW else 1
    img = Image.new("RGB", (width * s, height * s), nuis.background)
    draw = ImageDraw.Draw(img)
    cx, cy = nuis.cx * width * s, nuis.cy * height * s
    a = nuis.scale * width * s
    b = a * ident.aspect

    draw.ellipse([cx - 1.05 * a, cy - 1.1 * b, cx + 1.05 * a, cy + 0.35 * b], fill=ident.hair)
    draw.ellipse([cx - a, cy - 0.95 * b, cx + a, cy + b], fill=ident.skin)

    def poly(idx: slice) -> list[tuple[float, float]]:
        return [(float(x) * s, float(y) * s) for x, y in lm[idx]]

    brow_w = max(1, int(ident.brow_thickness * b))
    dark = tuple(int(c * 0.5) for c in ident.hair)
    draw.line(poly(slice(17, 22)), fill=dark, width=brow_w)
    draw.line(poly(slice(22, 27)), fill=dark, width=brow_w)
    for start in (36, 42):
        draw.polygon(poly(slice(start, start + 6)), fill=(245, 245, 240), outline=(40, 30, 30))
        ex, ey = lm[start : start + 6].mean(0) * s
        r = 0.055 * a
        draw.ellipse([ex - r, ey - r, ex + r, ey + r], fill=(30, 25, 35))
    shade = tuple(int(c * 0.75) for c in ident.skin)
    draw.line(poly(slice(27, 31)), fill=shade, width=max(1, int(0.03 * a)))
    draw.line(poly(slice(31, 36)), fill=shade, width=max(1, int(0.03 * a)))
    draw.polygon(poly(slice(48, 60)), fill=(150, 50, 60))
    draw.polygon(poly(slice(60, 68)), fill=(50, 15, 20))

    if s > 1:
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)  # a copy: written in place below
    ramp = 1.0 + nuis.light_slope * np.linspace(-1, 1, width, dtype=np.float32)
    arr *= (nuis.light * ramp)[None, :, None]
    arr += np.float32(nuis.noise) * rng.standard_normal(arr.shape, dtype=np.float32)
    return np.clip(arr, 0, 255, out=arr).astype(np.uint8), lm
