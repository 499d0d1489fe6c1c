"""Stage `pretrain`: contrastive stage 1 of a VA pipeline (lora | frozen_mlp | cached), every
fold; for linear_probe, which has nothing to pretrain, the starting checkpoints finetune reads."""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.data.splits import SplitConfig
from affectpipe.data.va_clips import check_store
from affectpipe.features.extract import ExtractConfig, expected_attrs
from affectpipe.models.load import check_store_weights
from affectpipe.stage import run_stage
from affectpipe.train.va import PretrainConfig, pretrain_va, train_folds

app = typer.Typer(add_completion=False)
SPLIT = "preprocess.afewva.split"  # the actor folds cross-validation re-cuts
CLIP = "extract.clip"  # what the store must have been made with


@app.command()
def main(
    variant: str = typer.Argument(..., help="lora | frozen_mlp | cached | linear_probe"),
    inputs: Path = typer.Option(..., help="feature store file the variant trains on"),
    out: Path = typer.Option(..., help="checkpoint folder: one fold<k>/ per fold"),
    live: Path = typer.Option(..., help="dvclive folder: one fold<k>/ per fold"),
    processed: Path = typer.Option(
        None, help="the processed AFEW-VA folder the store was made from: checks its settings"
    ),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    clip = run_stage(lambda: from_section(ExtractConfig, section(params, CLIP), CLIP))
    cfg = run_stage(lambda: from_section(PretrainConfig, section(params, "pretrain"), "pretrain"))
    split = run_stage(lambda: from_section(SplitConfig, section(params, SPLIT), SPLIT))
    seed = run_stage(lambda: section(params, "seed"))
    used = {"seed": seed, "pretrain": section(params, "pretrain"), SPLIT: section(params, SPLIT)}
    run_stage(lambda: check_store(inputs, expected_attrs("clip", clip, "afewva", processed)))
    run_stage(lambda: check_store_weights(inputs))
    results = run_stage(lambda: train_folds(
        split, out, live,
        lambda fold, ckpt, log: pretrain_va(inputs, variant, cfg, seed, ckpt, log, used, fold),
    ))  # fmt: skip
    for name, result in results.items():
        if not result.history:
            typer.echo(f"pretrain {variant} {name}: no contrastive stage; starting checkpoint "
                       f"-> {out / name}")  # fmt: skip
            continue
        typer.echo(
            f"pretrain {variant} {name}: best epoch {result.best_epoch + 1}/"
            f"{len(result.history)}, val loss {result.best_value:.4f} -> {out / name}"
        )


if __name__ == "__main__":
    app()
