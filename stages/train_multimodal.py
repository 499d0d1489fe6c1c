"""Stage `train_multimodal`: cached face/voice embeddings -> a fusion or single-modality model.

python stages/train_multimodal.py fusion ravdess   # or audio | video, cremad
"""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.data.pairs import PairConfig
from affectpipe.models.multimodal import MODALITIES
from affectpipe.stage import run_stage
from affectpipe.train.multimodal import multimodal_config, train_multimodal

app = typer.Typer(add_completion=False)


@app.command()
def main(
    model: str = typer.Argument(..., help=" | ".join(MODALITIES)),
    dataset: str = typer.Argument(..., help="ravdess | cremad"),
    processed_dir: Path = typer.Option(None, help="default: data/processed/<dataset>"),
    features_dir: Path = typer.Option(Path("data/features")),
    ckpt_dir: Path = typer.Option(None, help="default: models/multimodal/<model>_<dataset>"),
    live_dir: Path = typer.Option(None, help="default: plots/train/multimodal-<model>-<dataset>"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    cfg = run_stage(lambda: multimodal_config(section(params, "multimodal")))
    name = f"preprocess.{dataset}.pairs"  # other folds redraw their pairs the same way
    pair_cfg = run_stage(lambda: from_section(PairConfig, section(params, name), name))
    report = run_stage(
        lambda: train_multimodal(
            model,
            dataset,
            cfg,
            processed_dir or Path("data/processed") / dataset,
            features_dir,
            ckpt_dir or Path("models/multimodal") / f"{model}_{dataset}",
            live_dir or Path("plots/train") / f"multimodal-{model}-{dataset}",
            seed=params["seed"],
            pair_cfg=pair_cfg,
        )
    )
    val = ", ".join(f"{k} {v:.3f}" for k, v in sorted(report["val"].items()))
    typer.echo(f"train_multimodal {model} {dataset}: best epoch {report['best_epoch']}: {val}")
    if "cv" in report:
        cv = report["cv"]
        typer.echo(
            f"  {cv['folds']} folds: accuracy {cv['accuracy_mean']:.3f} "
            f"+- {cv['accuracy_std']:.3f}, uar {cv['uar_mean']:.3f} +- {cv['uar_std']:.3f}"
        )
    for item in report["skipped"][:20]:
        typer.echo(f"  skipped {item['path']}: {item['reason']}", err=True)


if __name__ == "__main__":
    app()
