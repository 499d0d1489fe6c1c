"""Real faces for tests: the astronaut of scikit-image's public-domain photographs, pasted into
cluttered scenes and videos; each scene knows where the face's landmark box lies."""

from __future__ import annotations

import numpy as np
from PIL import Image

from affectpipe.data.faces import Box

# the astronaut photograph's 68-landmark extent (dlib's predictor; AFEW-VA-style annotation)
FACE = (179.0, 87.0, 272.0, 178.0)
HEAD = (140, 50, 310, 215)  # the head around it, as cut out (x0, y0, x1, y1)


def astronaut_head() -> np.ndarray:
    from skimage import data

    x0, y0, x1, y1 = HEAD
    return data.astronaut()[y0:y1, x0:x1]


def clutter(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A busy background: tiles of other scikit-image photographs (coffee, rocket, a cat...)."""
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [data.coffee(), data.rocket(), data.chelsea(), data.hubble_deep_field()]
    out = np.zeros((height, width, 3), np.uint8)
    tile = max(height, width) // 2
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            p = photos[int(rng.integers(len(photos)))]
            py = int(rng.integers(0, p.shape[0] - tile))
            px = int(rng.integers(0, p.shape[1] - tile))
            out[y : y + tile, x : x + tile] = p[py : py + tile, px : px + tile, :3][
                : height - y, : width - x
            ]
    return out


def paste_head(image: np.ndarray, x: int, y: int, side: int) -> Box:
    """Paste the astronaut's head, `side` pixels wide, with its top-left at (x, y) (it may leave
    the image); returns where her face's landmark extent lands, in `image` pixels."""
    head = astronaut_head()
    hx0, hy0, hx1, hy1 = HEAD
    s = side / (hx1 - hx0)
    h = round((hy1 - hy0) * s)
    patch = np.asarray(Image.fromarray(head).resize((side, h), Image.Resampling.BILINEAR))
    ih, iw = image.shape[:2]
    ys, xs = slice(max(0, y), min(ih, y + h)), slice(max(0, x), min(iw, x + side))
    if ys.start < ys.stop and xs.start < xs.stop:
        image[ys, xs] = patch[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
    fx0, fy0, fx1, fy1 = FACE
    return (x + (fx0 - hx0) * s, y + (fy0 - hy0) * s, x + (fx1 - hx0) * s, y + (fy1 - hy0) * s)
