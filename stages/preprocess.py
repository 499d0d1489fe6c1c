"""Stage `preprocess`: raw dataset folder -> tables, crops/frames/audio, splits and a report."""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.data.image_size import preprocess_values
from affectpipe.data.registry import dataset_module
from affectpipe.problems import note_leftovers, remove_temps
from affectpipe.stage import run_stage

app = typer.Typer(add_completion=False)
NOTED = ("notes", "center_fallback", "resampled")  # lists worth a count on the console


def summary(report: dict) -> str:
    """One line from the report: its counts and each split's clips (the rest stays in the file)."""
    counts = [f"{v} {k.replace('_', ' ')}" for k, v in report.items() if type(v) is int]
    splits = report.get("splits", {})
    counts += [f"{name} {part.get('clips', '?')} clips" for name, part in splits.items()]
    notes = [f"{len(v)} {k.replace('_', ' ')}" for k, v in report.items() if k in NOTED and v]
    return ", ".join(counts + notes)


@app.command()
def main(
    dataset: str = typer.Argument(..., help="afewva | ravdess | cremad"),
    raw_dir: Path = typer.Option(..., help="the download stage's folder"),
    out_dir: Path = typer.Option(..., help="the processed dataset folder to write"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    raw, out = raw_dir, out_dir

    def work() -> dict:
        module, name = dataset_module(dataset), f"preprocess.{dataset}"
        values = preprocess_values(params, dataset)  # an `auto` image side: the backbone's
        cfg = from_section(module.PreprocessConfig, values, name)
        note_leftovers(out, remove_temps(out))  # half-written files of a killed run
        return module.preprocess(cfg, raw, out, seed=section(params, "seed"))

    report = run_stage(work)
    skipped = report.get("skipped", [])
    typer.echo(f"preprocess {dataset}: {summary(report)}; {len(skipped)} input(s) skipped")
    perceived = report.get("perceived")  # CREMA-D's crowd-rated clips
    if perceived is not None:
        groups = ", ".join(f"{n} {g}" for g, n in perceived.get("groups", {}).items())
        typer.echo(f"  perceived set: {groups or perceived.get('skipped')}")
    typer.echo(f"  full report: {out}/report.json")
    for item in skipped[:20]:
        typer.echo(f"  skipped {item['path']}: {item['reason']}", err=True)


if __name__ == "__main__":
    app()
