"""Stage `extract`: a processed dataset folder -> `data/features/<backbone>_<dataset>.h5`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from affectpipe.compute import compute_config
from affectpipe.config import from_section, load_params, section
from affectpipe.features.extract import config_class, extract_features
from affectpipe.problems import NOT_APPLICABLE, write_json
from affectpipe.stage import run_stage

app = typer.Typer(add_completion=False)


@app.command()
def main(
    backbone: str = typer.Argument(..., help="clip | videomae | wav2vec2 | egemaps | compare"),
    dataset: str = typer.Argument(..., help="afewva | ravdess | cremad"),
    in_dir: Path = typer.Option(..., help="the processed dataset folder"),
    out_dir: Path = typer.Option(..., help="<backbone>_<dataset>.h5 goes here"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    name = f"extract.{backbone}"
    cfg = run_stage(lambda: from_section(config_class(backbone), section(params, name), name))
    compute = run_stage(lambda: compute_config(params))
    out = out_dir / f"{backbone}_{dataset}.h5"
    report, seconds = run_stage(
        lambda: extract_features(
            backbone,
            dataset,
            in_dir,
            out,
            cfg,
            compute,
            policy=section(params, "extract.bad_input"),
        )
    )
    if os.environ.get("RANK", "0") != "0":  # torchrun/accelerate: rank 0 merged and reports
        return
    run_stage(lambda: write_json(out.with_suffix(".report.json"), report))
    if NOT_APPLICABLE in report:  # an audio-only or video-only release: an empty store says why
        typer.echo(f"extract {backbone} {dataset}: not applicable: {report[NOT_APPLICABLE]} "
                   f"-> {out} (empty)")  # fmt: skip
        return
    rate = report["items"] / max(seconds, 1e-9)
    typer.echo(
        f"extract {backbone} {dataset}: {report['clips']} clips, {report['items']} items "
        f"in {seconds:.1f} s ({rate:.1f} items/s) -> {out}"
    )
    skipped = report["skipped"]
    typer.echo(
        f"  {len(skipped)} input(s) skipped, {len(report['no_modality'])} clip(s) "
        f"without this modality; see {out.with_suffix('.report.json')}"
    )
    for item in skipped[:20]:
        typer.echo(f"  skipped {item['path']}: {item['reason']}", err=True)


if __name__ == "__main__":
    app()
