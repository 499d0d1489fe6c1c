"""The `affectpipe` command: `predict` on a video or a folder, and the interactive `demo`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Emotion over time and face/voice congruence for videos.")  # fmt: skip


VA_STRIDE = None  # frames between VA window starts; None: the VA checkpoint's eval_stride
MAX_SIDE = None  # VA frames decoded at this longer side at most; None: full size, as AFEW-VA's
THRESHOLD = None  # congruence verdict threshold; None: the one the checkpoint was calibrated to
VA_VARIANT_HELP = ("VA model models/finetune/<variant>/fold0: best (the one evaluate selected "
                   "on validation CCC, plots/va/selection.json) | lora | frozen_mlp | cached | "
                   "linear_probe")  # fmt: skip


def _predictor(models_dir: Path, device: str, va_variant: str, dataset: str, params_file: Path,
               stride: int | None = VA_STRIDE, max_side: int | None = MAX_SIDE,
               threshold: float | None = THRESHOLD):  # fmt: skip
    """Load the models once. Preprocessing settings come from the checkpoints (what the models
    were trained on); params.yaml, when it exists, fills in for checkpoints that lack them."""
    from transformers.utils import logging as hf_logging

    from affectpipe.config import load_params
    from affectpipe.predict import (
        VA_SELECTION,
        PredictConfig,
        Predictor,
        project_root,
        settings_from_params,
    )

    models_dir = models_dir or project_root() / "models"
    params_file = params_file or project_root() / "params.yaml"

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per backbone is noise here
    params = load_params(params_file) if params_file.is_file() else {}
    settings = settings_from_params(params, dataset)
    cfg = PredictConfig(models_dir=models_dir, va_variant=va_variant,
                        va_selection=project_root() / VA_SELECTION, av_dataset=dataset,
                        device=device, va_stride=stride, max_side=max_side,
                        threshold=threshold)  # fmt: skip
    predictor = Predictor(cfg, settings)
    for note in predictor.notes:
        typer.echo(f"note: {note}", err=True)
    return predictor


def _fail(err: Exception) -> typer.Exit:
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(1)


@app.command()
def predict(
    path: Path = typer.Argument(..., help="a video file, or a folder searched for videos"),
    models_dir: Path = typer.Option(
        None, help="checkpoints written by the pipeline; default: the checkout's models/"
    ),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="out.jsonl (one line per video) or a folder (one JSON per "
        "video); default: JSON on stdout",
    ),  # fmt: skip
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    va_variant: str = typer.Option("best", help=VA_VARIANT_HELP),
    dataset: str = typer.Option("ravdess", help="emotion model trained on: ravdess | cremad"),
    stride: int | None = typer.Option(
        VA_STRIDE,
        min=1,
        help="frames (at the VA model's training rate) between VA window starts; default: the "
        "evaluation stride the VA checkpoint records",
    ),
    max_side: int | None = typer.Option(
        MAX_SIDE,
        min=2,
        help="decode VA frames at this longer side at most (pixels) before the face crop; "
        "default: full size, as AFEW-VA's crops were cut",
    ),
    threshold: float | None = typer.Option(
        THRESHOLD,
        help="calibrated congruence probability at or above which face and voice agree; "
        "default: the threshold the fusion checkpoint chose on its validation fold",
    ),
    params_file: Path = typer.Option(
        None,
        "--params",
        help="preprocessing settings for checkpoints that do not record them (if the file "
        "exists); default: the checkout's params.yaml",
    ),
) -> None:
    """Predict valence/arousal over time, emotions and congruence; one JSON per video."""
    from affectpipe.predict import predict_paths
    from affectpipe.problems import InputProblem

    try:
        predictor = _predictor(models_dir, device, va_variant, dataset, params_file, stride,
                               max_side, threshold)  # fmt: skip
        outcomes = predict_paths(predictor, path, output)
    except (InputProblem, FileNotFoundError, FileExistsError, ValueError, OSError) as err:
        raise _fail(err) from None
    failed = [o for o in outcomes if o.error is not None]
    for o in failed:
        typer.echo(f"failed: {o.path}: {o.error}", err=True)
    where = f" -> {output}" if output else ""
    typer.echo(f"{len(outcomes) - len(failed)} of {len(outcomes)} video(s) predicted{where}",
               err=True)  # fmt: skip
    if failed:
        raise typer.Exit(1)


@app.command()
def demo(
    port: int = typer.Option(7860, help="port on 127.0.0.1"),
    share: bool = typer.Option(False, help="also create a public Gradio link"),
    models_dir: Path = typer.Option(
        None, help="checkpoints written by the pipeline; default: the checkout's models/"
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    dataset: str = typer.Option("ravdess", help="emotion model trained on: ravdess | cremad"),
    va_variant: str = typer.Option("best", help=VA_VARIANT_HELP),
    params_file: Path = typer.Option(None, "--params", help="default: the checkout's params.yaml"),
) -> None:
    """Interactive demo: upload a video or pick a sample; see emotions, congruence and VA."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from affectpipe.demo import launch, require_gradio

    try:
        require_gradio()
    except ImportError as err:
        raise _fail(err) from None
    try:
        predictor = _predictor(models_dir, device, va_variant, dataset, params_file)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise _fail(err) from None
    launch(predictor, port=port, share=share)


if __name__ == "__main__":
    app()
