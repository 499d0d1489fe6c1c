"""Compare face detectors whose weights install with a package (nothing fetched at run time).

Test images are public-domain photographs shipped with scikit-image: (a) the astronaut's face
(its box from the 68 landmarks the detector under test does not see: a fixed box) cut out and
pasted at random scale, position and brightness into cluttered 320x240 scenes made from other
scikit-image photographs; (b) the 100 LFW faces of `skimage.data.lfw_subset` (25x25 grey,
upscaled to 100 px) pasted the same way; (c) the same scenes with the 100 LFW non-faces (false
positives); (d) whole photographs without a human face (cat, coffee, rocket). A hit is a box
whose centre lies in the true face box and whose side is 0.5x to 2x the true side. Time is per
320x240 frame, one thread. Candidates that are not installed are listed as such.

Separately, `preprocess` times `crop_clip` with `face` against `foreground` on 16 clips of each
of the pipeline's RAVDESS and CREMA-D folders (`data/raw/<ds>`, after `dvc repro`) and scales
the difference to all their clips: the time face detection adds to `dvc repro`.

    python bench/faces.py              # minutes (MMOD is slow); writes bench/results/faces.json
    python bench/faces.py preprocess   # adds the preprocessing cost to that file
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("OMP_NUM_THREADS", "1")
W, H = 320, 240
ASTRONAUT_FACE = (179, 87, 272, 178)  # x0, y0, x1, y1: the astronaut's 68 landmarks' extent
OUT = Path(__file__).parent / "results" / "faces.json"

Box = tuple[float, float, float, float]


def _backgrounds(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    from skimage import data

    photos = [data.coffee(), data.rocket(), data.chelsea(), data.hubble_deep_field(), data.retina()]
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        y = rng.integers(0, p.shape[0] - H + 1)
        x = rng.integers(0, p.shape[1] - W + 1)
        out.append(np.ascontiguousarray(p[y : y + H, x : x + W, :3]))
    return out


def _paste(bg: np.ndarray, patch: np.ndarray, side: int, rng: np.random.Generator):
    """Paste `patch` resized to `side` at a random place; returns (image, face box)."""
    img = bg.copy()
    p = np.asarray(Image.fromarray(patch).resize((side, side), Image.Resampling.BILINEAR))
    x = int(rng.integers(0, W - side + 1))
    y = int(rng.integers(0, H - side + 1))
    img[y : y + side, x : x + side] = np.clip(p * rng.uniform(0.7, 1.2), 0, 255).astype(np.uint8)
    return img, (x, y, x + side, y + side)


def cases(seed: int = 0):
    """(name, image, true face box or None) for every test image."""
    from skimage import data

    rng = np.random.default_rng(seed)
    astro = data.astronaut()
    x0, y0, x1, y1 = ASTRONAUT_FACE
    pad = int(0.4 * (x1 - x0))  # the head around the face: a detector needs some context
    head = astro[y0 - pad : y1 + pad, x0 - pad : x1 + pad]
    lfw = data.lfw_subset()  # 100 faces then 100 non-faces, 25x25 in [0, 1]
    out = []
    for i, bg in enumerate(_backgrounds(rng, 50)):
        side = int(rng.integers(70, 200))
        img, (bx0, by0, bx1, by1) = _paste(bg, head, side, rng)
        s = side / head.shape[0]  # map the face box into the pasted head
        box = (bx0 + pad * s, by0 + pad * s, bx1 - pad * s, by1 - pad * s)
        out.append(("astronaut", img, box, i))
    for i, bg in enumerate(_backgrounds(rng, 200)):
        grey = (np.repeat(lfw[i][..., None], 3, axis=2) * 255).astype(np.uint8)
        img, box = _paste(bg, grey, 100, rng)
        out.append(("lfw_face" if i < 100 else "lfw_nonface", img, box if i < 100 else None, i))
    for name in ("chelsea", "coffee", "rocket"):
        img = np.asarray(Image.fromarray(getattr(data, name)()).resize((W, H)))
        out.append(("no_face_photo", img, None, 0))
    return out


def _models() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    return Path(spec.submodule_search_locations[0]) / "models"


def candidates() -> dict[str, Callable[[np.ndarray], list[Box]] | str]:
    """Detector name -> function (RGB uint8 -> boxes), or why it is not measured."""
    out: dict[str, Callable[[np.ndarray], list[Box]] | str] = {}
    try:
        import dlib

        hog = dlib.get_frontal_face_detector()
        mmod = dlib.cnn_face_detection_model_v1(str(_models() / "mmod_human_face_detector.dat"))

        def rect(r):
            return (r.left(), r.top(), r.right(), r.bottom())

        out["dlib HOG, upsample 0"] = lambda im: [rect(r) for r in hog(im, 0)]
        out["dlib HOG, upsample 1"] = lambda im: [rect(r) for r in hog(im, 1)]
        out["dlib MMOD CNN, upsample 0"] = lambda im: [rect(d.rect) for d in mmod(im, 0)]
    except (ImportError, AttributeError, TypeError) as err:
        out["dlib"] = f"not installed ({err})"
    try:
        import cv2

        haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

        def haar_fn(im):
            grey = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
            found = haar.detectMultiScale(grey, 1.1, 5, minSize=(24, 24))
            return [(x, y, x + w, y + h) for x, y, w, h in found]

        out[f"OpenCV {cv2.__version__} Haar (frontal default)"] = haar_fn
    except (ImportError, AttributeError) as err:
        out["OpenCV Haar"] = f"not available ({err})"
    try:
        from skimage import data
        from skimage.feature import Cascade

        lbp = Cascade(data.lbp_frontal_face_cascade_filename())

        def lbp_fn(im):
            found = lbp.detect_multi_scale(im, 1.2, 1, min_size=(40, 40), max_size=(220, 220))
            return [(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]) for d in found]

        out["scikit-image LBP cascade"] = lbp_fn
    except ImportError as err:
        out["scikit-image LBP cascade"] = f"not installed ({err})"
    out["mediapipe"] = "no face model in the wheel (its Tasks API loads a downloaded .tflite)"
    out["facenet-pytorch MTCNN"] = "pins torch<2.3 and numpy<2: conflicts with torch 2.13"
    return out


def hit(boxes: list[Box], truth: Box) -> bool:
    x0, y0, x1, y1 = truth
    side = ((x1 - x0) * (y1 - y0)) ** 0.5
    for b in boxes:
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        s = ((b[2] - b[0]) * (b[3] - b[1])) ** 0.5
        if x0 <= cx <= x1 and y0 <= cy <= y1 and 0.5 * side <= s <= 2 * side:
            return True
    return False


SLOW = {"dlib MMOD CNN, upsample 0": 10}  # measured on every 10th image only (seconds each)


def measure(fn: Callable[[np.ndarray], list[Box]], images) -> dict[str, float]:
    found: dict[str, list[int]] = {}
    start = time.perf_counter()
    for kind, img, truth, _ in images:
        boxes = fn(img)
        ok = hit(boxes, truth) if truth is not None else not boxes
        found.setdefault(kind, []).append(int(ok))
    ms = 1000 * (time.perf_counter() - start) / len(images)
    return {
        "astronaut_found": float(np.mean(found["astronaut"])),
        "lfw_found": float(np.mean(found["lfw_face"])),
        "lfw_nonface_false_positive": 1 - float(np.mean(found["lfw_nonface"])),
        "no_face_photo_false_positive": 1 - float(np.mean(found["no_face_photo"])),
        "ms_per_frame": round(ms, 1),
        "images": len(images),
    }


RAW = {"ravdess": "data/raw/ravdess/Actor_*/*.mp4", "cremad": "data/raw/cremad/VideoFlash/*.flv"}


def preprocess_cost(n_clips: int = 16) -> dict[str, dict[str, float]]:
    """Seconds per 16-frame clip for `face` and `foreground` crops, and the total added."""
    import glob

    from affectpipe.data import faces, media
    from affectpipe.data.framecrop import crop_clip

    faces._dlib()  # load once, outside the timing (as preprocessing does)
    out = {}
    root = Path(__file__).resolve().parents[1]
    for ds, pattern in RAW.items():
        files = sorted(glob.glob(str(root / pattern)))
        if not files:
            continue
        picked = files[:: max(1, len(files) // n_clips)][:n_clips]
        clips = []
        for f in picked:
            frames = media.read_frames(Path(f), 480)
            clips.append(frames[media.sample_indices(len(frames), 16)])
        per_clip = {}
        for method in ("foreground", "face"):
            start = time.perf_counter()
            for c in clips:
                crop_clip(c, method, 112, 0.25)
            per_clip[method] = (time.perf_counter() - start) / len(clips)
        out[ds] = {
            "clips": len(files),
            "frame": list(clips[0].shape[1:3]),
            "s_per_clip_face": round(per_clip["face"], 3),
            "s_per_clip_foreground": round(per_clip["foreground"], 3),
            "added_s_all_clips": round((per_clip["face"] - per_clip["foreground"]) * len(files), 1),
        }
        print(ds, out[ds], flush=True)
    return out


def main() -> None:
    import sys

    if sys.argv[1:] == ["preprocess"]:
        saved = json.loads(OUT.read_text()) if OUT.exists() else {}
        saved["preprocess"] = preprocess_cost()
        saved["load_average"] = [round(v, 1) for v in os.getloadavg()]
        OUT.write_text(json.dumps(saved, indent=1, sort_keys=True))
        return
    images = cases()
    results: dict[str, object] = {}
    for name, fn in candidates().items():
        step = SLOW.get(name, 1)
        results[name] = fn if isinstance(fn, str) else measure(fn, images[::step])
        print(name, results[name], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(OUT.read_text()) if OUT.exists() else {}
    saved |= {"frame": [W, H], "results": results}
    OUT.write_text(json.dumps(saved, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
