"""Interactive Gradio demo: a video in, emotions, congruence and the valence/arousal path out.

Sample clips are rendered at start-up by the synthetic talking-face generator (no binary files
in the repository): one where face and voice agree, one dubbed with a voice of another
emotion, one without an audio track. Gradio is an optional dependency (the `demo` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from affectpipe.data.labels import EMOTION_ID, EMOTIONS

DEMO_EXTRA = "pip install -e '.[demo]' (from the repository root)"
SAMPLE_FPS, SAMPLE_SIZE, SAMPLE_RATE, SAMPLE_SECONDS = 15, (160, 128), 48000, 2.0
# name -> (face emotion, voice emotion or None for a silent video)
SAMPLES: dict[str, tuple[str, str | None]] = {
    "happy face, happy voice": ("happy", "happy"),
    "angry face, sad voice": ("angry", "sad"),
    "surprised face, no audio": ("surprised", None),
}


def require_gradio():
    """Import gradio, or say how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as e:
        raise ImportError(f"the demo needs Gradio 6 (the 'demo' extra): {DEMO_EXTRA}") from e
    return gr


def write_sample(path: Path, face: str, voice: str | None, seed: int = 0) -> Path:
    """Render one talking-face clip: the face shows `face`, the voice speaks `voice`."""
    from affectpipe.data.media import write_video
    from affectpipe.data.synthetic.talking import Actor, emotion_expression, render_talking
    from affectpipe.data.synthetic.voice import synthesize, voice_style

    rng = np.random.default_rng(seed)
    actor = Actor.sample(rng, female=True)
    spoken = synthesize(voice_style(EMOTION_ID[voice or face]), actor.speaker, 1,
                        SAMPLE_SECONDS, SAMPLE_RATE, rng)  # fmt: skip
    frames = render_talking(actor, emotion_expression(EMOTION_ID[face]), spoken, SAMPLE_FPS,
                            *SAMPLE_SIZE, rng)  # fmt: skip
    audio = spoken.samples if voice is not None else None
    write_video(path, frames, SAMPLE_FPS, audio, SAMPLE_RATE)
    return path


def make_samples(folder: Path) -> dict[str, Path]:
    """The sample clips, written once into `folder` (reused when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (name, (face, voice)) in enumerate(SAMPLES.items()):
        path = folder / f"sample_{i}_{face}_{voice or 'silent'}.mp4"
        out[name] = path if path.is_file() else write_sample(path, face, voice, seed=i)
    return out


# --- figures ------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def emotion_figure(record: dict[str, Any]):
    """Grouped bars: fused, face and voice probabilities over the 8 emotions."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    heads = [(k, n) for k, n in (("emotion", "fused"), ("face_emotion", "face"),
                                 ("voice_emotion", "voice")) if record.get(k)]  # fmt: skip
    x = np.arange(len(EMOTIONS))
    width = 0.8 / max(len(heads), 1)
    for i, (key, name) in enumerate(heads):
        p = [record[key]["probabilities"][e] for e in EMOTIONS]
        ax.bar(x + (i - (len(heads) - 1) / 2) * width, p, width,
               label=f"{name}: {record[key]['label']}")  # fmt: skip
    ax.set_xticks(x, EMOTIONS, rotation=30)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title("Emotion" if heads else "Emotion (no emotion model available)")
    if heads:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def va_trace_figure(record: dict[str, Any]):
    """Valence and arousal over time (seconds), at the VA model's frame rate and window."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.8), dpi=100)
    t = [f["t"] for f in record["frames"]]
    ax.plot(t, [f["valence"] for f in record["frames"]], marker=".", label="valence")
    ax.plot(t, [f["arousal"] for f in record["frames"]], marker=".", label="arousal")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("-1 .. 1")
    va = (record.get("time_base") or {}).get("va")
    scale = f" ({va['fps']:g} fps, {va['window_s']:g} s windows)" if va else ""
    ax.set_title(f"Valence and arousal over time{scale}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def va_plane_figure(record: dict[str, Any]):
    """The trajectory in the valence-arousal plane, coloured by time."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    v = np.array([f["valence"] for f in record["frames"]])
    a = np.array([f["arousal"] for f in record["frames"]])
    ax.plot(v, a, color="lightgrey", lw=1)
    points = ax.scatter(v, a, c=[f["t"] for f in record["frames"]], cmap="viridis", s=18)
    if len(v):
        fig.colorbar(points, ax=ax, label="time (s)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(xlim=(-1, 1), ylim=(-1, 1), xlabel="valence", ylabel="arousal",
           title="Valence-arousal trajectory")  # fmt: skip
    fig.tight_layout()
    return fig


def face_text(record: dict[str, Any]) -> str:
    """Where the face was found: detection coverage and method, per set of sampled frames."""
    parts = []
    for key, what in (("av", "emotion frames"), ("va", "VA frames")):
        b = (record.get("face") or {}).get(key)
        if b is None:
            continue
        cov = "" if b["coverage"] is None else f"face found in {b['coverage']:.0%} of "
        fell = "" if b["used"] == b["method"] else f", no face: {b['used']} crop"
        parts.append(f"{cov}{len(b['frames'])} {what} (crop: {b['method']}{fell})")
    return "; ".join(parts) or "no frames were cropped"


def face_thumbnail(path: Path, record: dict[str, Any], max_side: int = 320) -> np.ndarray | None:
    """The middle sampled frame with its face box drawn (red: detected, orange: interpolated or
    held, grey: centre square, no face found); None without a cropped frame."""
    from PIL import Image, ImageDraw

    from affectpipe.data.media import frames_at

    faces = record.get("face") or {}
    block = faces.get("av") or faces.get("va")
    if not block or not block["frames"]:
        return None
    frame = block["frames"][len(block["frames"]) // 2]
    index = frame.get("index", round(frame.get("t", 0.0) * (record.get("fps") or 0.0)))
    image = Image.fromarray(frames_at(path, np.array([index]), max_side)[0])
    scale = image.width / record["width"] if record.get("width") else 1.0
    colour = "grey" if block["used"] != block["method"] else (
        "red" if frame["detected"] in (True, None) else "orange")  # fmt: skip
    ImageDraw.Draw(image).rectangle([v * scale for v in frame["box"]], outline=colour, width=2)
    return np.asarray(image)


def verdict_text(record: dict[str, Any]) -> str:
    """One line on congruence, or why there is none."""
    c = record.get("congruence")
    if c is not None:
        how = "calibrated" if c.get("calibrated") else "uncalibrated"
        return (f"{c['verdict'].upper()} (face and voice agree with p = {c['probability']:.2f}, "
                f"{how}; congruent from p >= {c['threshold']:.2f})")  # fmt: skip
    reasons = [u["reason"] for u in record["unavailable"] if u["field"] == "congruence"]
    return "congruence unavailable: " + (reasons[0] if reasons else "unknown reason")


# --- app ----------------------------------------------------------------------------------------


def analyse(predictor, path: str | None) -> tuple:
    """Gradio callback: the outputs for one video file."""
    import matplotlib.pyplot as plt

    from affectpipe.problems import InputProblem

    if not path:
        return "choose or upload a video first", "", None, None, None, None, {}
    try:
        record = predictor(Path(path))
    except InputProblem as e:
        return f"error: {e.problem}", "", None, None, None, None, {"file": path, "error": e.problem}
    figs = emotion_figure(record), va_trace_figure(record), va_plane_figure(record)
    plt.close("all")  # gradio has rendered nothing yet, but holds the Figure objects
    thumb = face_thumbnail(Path(path), record)
    return (verdict_text(record), face_text(record), thumb, *figs, record)


def build_app(predictor, samples: dict[str, Path]):
    """The Blocks app: video input + sample buttons -> verdict, face box and coverage, three
    charts, raw JSON."""
    gr = require_gradio()
    with gr.Blocks(title="affectpipe demo") as app:
        gr.Markdown("# affectpipe\nUpload a video (mp4, avi, mov, flv, webm) or pick a sample.")
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="video", sources=["upload"], elem_id="video")
                run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                buttons = [gr.Button(name, elem_id=f"sample-{i}", size="sm")
                           for i, name in enumerate(samples)]  # fmt: skip
            with gr.Column(scale=2):
                verdict = gr.Textbox(label="congruence verdict", elem_id="verdict")
                with gr.Row():
                    faces = gr.Textbox(label="face detection", elem_id="face-coverage")
                    thumb = gr.Image(label="face box (middle frame)", elem_id="face-thumb",
                                     height=160)  # fmt: skip
                bars = gr.Plot(label="emotion (fused, face, voice)", elem_id="emotion-chart")
                trace = gr.Plot(label="valence / arousal over time", elem_id="va-trace")
                plane = gr.Plot(label="valence-arousal plane", elem_id="va-plane")
                raw = gr.JSON(label="prediction (JSON)", elem_id="record")
        outputs = [verdict, faces, thumb, bars, trace, plane, raw]
        run.click(lambda p: analyse(predictor, p), inputs=video, outputs=outputs)
        for button, path in zip(buttons, samples.values(), strict=True):
            button.click(lambda p=str(path): (p, *analyse(predictor, p)), outputs=[video, *outputs])
    return app


def launch(predictor, port: int = 7860, share: bool = False, samples_dir: Path | None = None,
           block: bool = True):  # fmt: skip
    """Render the samples, build the app and serve it on 127.0.0.1 (`share` adds a Gradio
    tunnel to it; the server itself is never bound to other interfaces)."""
    import tempfile

    folder = samples_dir or Path(tempfile.gettempdir()) / "affectpipe-demo-samples"
    app = build_app(predictor, make_samples(folder))
    app.queue()
    if not share:  # Gradio's own hint names its Python argument, not this CLI's --share
        print(f"affectpipe demo on http://127.0.0.1:{port} (--share adds a public link)")
    app.launch(
        server_name="127.0.0.1",
        server_port=port,
        share=share,
        prevent_thread_lock=not block,
        allowed_paths=[str(folder)],
        show_error=True,
        quiet=not share,  # with --share, Gradio prints the public link itself
    )
    return app
