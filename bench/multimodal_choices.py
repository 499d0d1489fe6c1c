"""Choose the `train_multimodal` defaults on validation folds only.

Each variant below changes one group of knobs of the shipped `train_multimodal` section. It is
trained with `folds: all` by the stage script itself, on the pipeline's processed data and
cached features (run `dvc repro` first); its figures are every fold's validation scores
(`train.json` -> `folds`), averaged over folds. No test fold is read: that is `evaluate`'s alone.
Writes `bench/results/multimodal_choices.json`; docs/multimodal.md quotes it.

The validation figures are those of each fold's best epoch, chosen on that same validation fold,
so they are optimistic for every variant alike: use them to rank variants, not as results.

    python bench/multimodal_choices.py            # ~10 min on 2 CPU cores (fusion, both datasets)
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
# name -> overrides of train_multimodal (nested like params.yaml)
VARIANTS: dict[str, dict[str, Any]] = {
    "shipped defaults": {},
    "GELU projector (projector: mlp)": {"model": {"projector": "mlp"}},
    "MLP congruence head (congruence: mlp)": {"fusion": {"congruence": "mlp"}},
    "hidden 512": {"model": {"hidden": 512}},
    "earlier training (dropout 0.2, lr 1e-3, 30 epochs)": {
        "model": {"dropout": 0.2},
        "train": {"lr": 0.001, "epochs": 30},
    },
}
REPORTED = ("uar", "macro_f1", "congruence_auc", "score")

app = typer.Typer(add_completion=False)


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) else value
    return out


def validation_figures(params: dict[str, Any], model: str, dataset: str, work: Path) -> dict:
    """Train every fold with the stage script; mean and std of each validation figure."""
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cmd = [sys.executable, str(ROOT / "stages" / "train_multimodal.py"), model, dataset,
           "--processed-dir", str(ROOT / "data/processed" / dataset),
           "--features-dir", str(ROOT / "data/features"), "--ckpt-dir", str(work / "ckpt"),
           "--live-dir", str(work / "live"), "--params", str(work / "params.yaml")]  # fmt: skip
    env = {**os.environ, "AFFECTPIPE_PROCESSES": "1"}
    subprocess.run(cmd, check=True, cwd=work, env=env, capture_output=True, text=True)
    folds = json.loads((work / "ckpt" / "train.json").read_text())["folds"]
    out = {}
    for key in REPORTED:
        values = [f[key] for f in folds.values() if f.get(key) is not None]
        out[key] = {
            "mean": round(float(np.mean(values)), 4),
            "std": round(float(np.std(values)), 4),
        }
    return out | {"folds": len(folds)}


@app.command()
def main(
    model: str = typer.Option("fusion"),
    datasets: list[str] = typer.Option(["ravdess", "cremad"]),
    out: Path = typer.Option(ROOT / "bench/results/multimodal_choices.json"),
) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train_multimodal"]["folds"] = "all"
    results: dict[str, Any] = {}
    for dataset in datasets:
        for name, over in VARIANTS.items():
            variant = dict(params, train_multimodal=merged(params["train_multimodal"], over))
            with tempfile.TemporaryDirectory() as tmp:
                figures = validation_figures(variant, model, dataset, Path(tmp))
            results.setdefault(dataset, {})[name] = figures
            val = ", ".join(f"{k} {figures[k]['mean']:.3f}" for k in REPORTED)
            typer.echo(f"{dataset} {name}: {val}")
    out.write_text(json.dumps({"model": model, "validation": results}, indent=2) + "\n")
    typer.echo(f"-> {out}")


if __name__ == "__main__":
    app()
