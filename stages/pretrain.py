"""Stage `pretrain`: contrastive stage 1 of a VA pipeline (lora | probe | cached)."""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.models.contrastive import ContrastiveConfig
from affectpipe.stage import run_stage
from affectpipe.train.loop import LoopConfig
from affectpipe.train.va import pretrain_va
from affectpipe.train.windows import WindowConfig

app = typer.Typer(add_completion=False)


@app.command()
def main(
    variant: str = typer.Argument(..., help="lora | probe | cached"),
    inputs: Path = typer.Option(..., help="feature store file the variant trains on"),
    out: Path = typer.Option(..., help="checkpoint folder"),
    live: Path = typer.Option(..., help="dvclive folder"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    sec = dict(section(params, "pretrain"))
    window = from_section(WindowConfig, sec.pop("window"), "pretrain.window")
    contrastive = from_section(ContrastiveConfig, sec.pop("contrastive"), "pretrain.contrastive")
    model = sec.pop("model")
    loop = from_section(LoopConfig, {**sec, "seed": params["seed"]}, "pretrain")
    used = {"seed": params["seed"], "pretrain": section(params, "pretrain")}
    result = run_stage(
        lambda: pretrain_va(inputs, variant, model, contrastive, window, loop, out, live, used)
    )
    typer.echo(
        f"pretrain {variant}: best epoch {result.best_epoch + 1}/{len(result.history)}, "
        f"val loss {result.best_value:.4f} -> {out}"
    )


if __name__ == "__main__":
    app()
