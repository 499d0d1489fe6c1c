"""Stage `finetune`: CCC-supervised stage 2 of a VA pipeline, from its stage-1 checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.stage import run_stage
from affectpipe.train.va import FinetuneStageConfig, finetune_va

app = typer.Typer(add_completion=False)


@app.command()
def main(
    variant: str = typer.Argument(..., help="lora | frozen_mlp | cached | linear_probe"),
    inputs: Path = typer.Option(..., help="feature store file the variant trains on"),
    init: Path = typer.Option(..., help="stage-1 checkpoint folder"),
    out: Path = typer.Option(..., help="checkpoint folder"),
    live: Path = typer.Option(..., help="dvclive folder"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    cfg = run_stage(
        lambda: from_section(FinetuneStageConfig, section(params, "finetune"), "finetune")
    )
    seed = run_stage(lambda: section(params, "seed"))
    used = {"seed": seed, "finetune": section(params, "finetune")}
    result = run_stage(lambda: finetune_va(inputs, init, cfg, seed, out, live, used))
    m = result.best_metrics
    typer.echo(
        f"finetune {variant}: best epoch {result.best_epoch + 1}/{len(result.history)}, val CCC "
        f"valence {m['val/ccc_valence']:.3f} arousal {m['val/ccc_arousal']:.3f} -> {out}"
    )


if __name__ == "__main__":
    app()
