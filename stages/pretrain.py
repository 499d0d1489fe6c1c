"""Stage `pretrain`: contrastive stage 1 of a VA pipeline (lora | frozen_mlp | cached); for
linear_probe, which has nothing to pretrain, the starting checkpoint finetune reads."""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.stage import run_stage
from affectpipe.train.va import PretrainConfig, pretrain_va

app = typer.Typer(add_completion=False)


@app.command()
def main(
    variant: str = typer.Argument(..., help="lora | frozen_mlp | cached | linear_probe"),
    inputs: Path = typer.Option(..., help="feature store file the variant trains on"),
    out: Path = typer.Option(..., help="checkpoint folder"),
    live: Path = typer.Option(..., help="dvclive folder"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    cfg = run_stage(lambda: from_section(PretrainConfig, section(params, "pretrain"), "pretrain"))
    seed = run_stage(lambda: section(params, "seed"))
    used = {"seed": seed, "pretrain": section(params, "pretrain")}
    result = run_stage(lambda: pretrain_va(inputs, variant, cfg, seed, out, live, used))
    if not result.history:
        typer.echo(f"pretrain {variant}: no contrastive stage; starting checkpoint -> {out}")
        return
    typer.echo(
        f"pretrain {variant}: best epoch {result.best_epoch + 1}/{len(result.history)}, "
        f"val loss {result.best_value:.4f} -> {out}"
    )


if __name__ == "__main__":
    app()
