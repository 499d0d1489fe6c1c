"""Stage `finetune`: CCC-supervised stage 2 of a VA pipeline, every fold, from the same fold's
stage-1 checkpoint or (`--scratch`) from fresh weights, to measure what stage 1 adds."""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.data.splits import SplitConfig
from affectpipe.data.va_clips import check_store
from affectpipe.features.extract import ExtractConfig, expected_attrs
from affectpipe.models.load import check_store_weights
from affectpipe.models.va import VAArchitecture
from affectpipe.stage import run_stage
from affectpipe.train.va import FinetuneStageConfig, Scratch, finetune_va, train_folds

app = typer.Typer(add_completion=False)
SPLIT = "preprocess.afewva.split"  # the actor folds cross-validation re-cuts
CLIP = "extract.clip"  # what the store must have been made with
ARCH = "pretrain.model"  # the architecture a model from scratch is built with


@app.command()
def main(
    variant: str = typer.Argument(..., help="lora | frozen_mlp | cached | linear_probe"),
    inputs: Path = typer.Option(..., help="feature store file the variant trains on"),
    out: Path = typer.Option(..., help="checkpoint folder: one fold<k>/ per fold"),
    live: Path = typer.Option(..., help="dvclive folder: one fold<k>/ per fold"),
    init: Path = typer.Option(None, help="stage-1 checkpoint folder (its fold<k>/ per fold)"),
    scratch: bool = typer.Option(False, "--scratch", help="no stage 1: fresh weights"),
    processed: Path = typer.Option(
        None, help="the processed AFEW-VA folder the store was made from: checks its settings"
    ),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    if (init is None) == (not scratch):
        raise typer.BadParameter("give exactly one of --init and --scratch")
    params = load_params(params_file)
    clip = run_stage(lambda: from_section(ExtractConfig, section(params, CLIP), CLIP))
    cfg = run_stage(
        lambda: from_section(FinetuneStageConfig, section(params, "finetune"), "finetune")
    )
    split = run_stage(lambda: from_section(SplitConfig, section(params, SPLIT), SPLIT))
    seed = run_stage(lambda: section(params, "seed"))
    used = {"seed": seed, "finetune": section(params, "finetune"), SPLIT: section(params, SPLIT)}
    start: Path | Scratch | None = init
    if scratch:
        arch = run_stage(lambda: from_section(VAArchitecture, section(params, ARCH), ARCH))
        start, used = Scratch(variant, arch), used | {ARCH: section(params, ARCH)}
    run_stage(lambda: check_store(inputs, expected_attrs("clip", clip, "afewva", processed)))
    run_stage(lambda: check_store_weights(inputs))

    def one(fold, ckpt, log):
        first = start if isinstance(start, Scratch) else start / ckpt.name
        return finetune_va(inputs, first, cfg, seed, ckpt, log, used, fold)

    results = run_stage(lambda: train_folds(split, out, live, one))
    for name, result in results.items():
        m = result.best_metrics
        typer.echo(
            f"finetune {variant} {name}: best epoch {result.best_epoch + 1}/"
            f"{len(result.history)}, val CCC valence {m['val/ccc_valence']:.3f} arousal "
            f"{m['val/ccc_arousal']:.3f} -> {out / name}"
        )


if __name__ == "__main__":
    app()
