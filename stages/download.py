"""Stage `download`: materialise `data/raw/<dataset>` from the source named in params."""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.data.registry import dataset_module
from affectpipe.stage import run_stage

app = typer.Typer(add_completion=False)


@app.command()
def main(
    dataset: str = typer.Argument(..., help="afewva | ravdess | cremad"),
    out_dir: Path = typer.Option(..., help="the raw dataset folder to fill"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    out = out_dir

    def work() -> list[str]:
        module, name = dataset_module(dataset), f"download.{dataset}"
        cfg = from_section(module.DownloadConfig, section(params, name), name)
        return module.download(cfg, out) or []

    notes = run_stage(work)
    typer.echo(f"download {dataset}: wrote {out}")
    for note in notes:
        typer.echo(f"  note: {note}", err=True)


if __name__ == "__main__":
    app()
