"""Stage `preprocess`: raw dataset folder -> tables, crops/frames/audio, splits and a report."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from affectpipe.config import load_params, section
from affectpipe.data.registry import dataset_module
from affectpipe.stage import run_stage

app = typer.Typer(add_completion=False)


@app.command()
def main(
    dataset: str = typer.Argument(..., help="afewva | ravdess | cremad"),
    raw_dir: Path = typer.Option(None, help="default: data/raw/<dataset>"),
    out_dir: Path = typer.Option(None, help="default: data/processed/<dataset>"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    raw = raw_dir or Path("data/raw") / dataset
    out = out_dir or Path("data/processed") / dataset
    report = run_stage(
        lambda: dataset_module(dataset).preprocess(
            section(params, f"preprocess.{dataset}"), raw, out, seed=params["seed"]
        )
    )
    skipped = report.get("skipped", [])
    summary = {k: v for k, v in report.items() if k != "skipped"}
    typer.echo(json.dumps(summary, indent=1, sort_keys=True))
    typer.echo(f"preprocess {dataset}: {len(skipped)} input(s) skipped, see {out}/report.json")
    for item in skipped[:20]:
        typer.echo(f"  skipped {item['path']}: {item['reason']}", err=True)


if __name__ == "__main__":
    app()
