"""Stage `finetune`: CCC-supervised stage 2 of a VA pipeline, from its stage-1 checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.stage import run_stage
from affectpipe.train.loop import LoopConfig
from affectpipe.train.va import FinetuneConfig, finetune_va
from affectpipe.train.windows import WindowConfig

app = typer.Typer(add_completion=False)


@app.command()
def main(
    variant: str = typer.Argument(..., help="lora | probe | cached"),
    inputs: Path = typer.Option(..., help="feature store file the variant trains on"),
    init: Path = typer.Option(..., help="stage-1 checkpoint folder"),
    out: Path = typer.Option(..., help="checkpoint folder"),
    live: Path = typer.Option(..., help="dvclive folder"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    sec = dict(section(params, "finetune"))
    window = from_section(WindowConfig, sec.pop("window"), "finetune.window")
    ft = from_section(FinetuneConfig, sec.pop("objective"), "finetune.objective")
    loop = from_section(LoopConfig, {**sec, "seed": params["seed"]}, "finetune")
    used = {"seed": params["seed"], "finetune": section(params, "finetune")}
    result = run_stage(lambda: finetune_va(inputs, init, ft, window, loop, out, live, used))
    m = result.best_metrics
    typer.echo(
        f"finetune {variant}: best epoch {result.best_epoch + 1}/{len(result.history)}, val CCC "
        f"valence {m['val/ccc_valence']:.3f} arousal {m['val/ccc_arousal']:.3f} -> {out}"
    )


if __name__ == "__main__":
    app()
