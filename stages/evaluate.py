"""Stage `evaluate`: score every trained model once on its test split; write metrics and plots."""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.evaluate import AVModelInputs, EvaluateConfig, VAModelInputs, evaluate_all
from affectpipe.results import fmt, update_readme
from affectpipe.stage import run_stage

app = typer.Typer(add_completion=False)


def va_models(specs: list[str]) -> dict[str, VAModelInputs]:
    """`variant:checkpoint:features[:stage1_checkpoint]` options -> {variant: inputs}, in the
    order given."""
    out = {}
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in (3, 4):
            raise typer.BadParameter(
                f"'{spec}': expected variant:checkpoint:features[:stage1_checkpoint]"
            )
        stage1 = Path(parts[3]) if len(parts) == 4 else None
        out[parts[0]] = VAModelInputs(Path(parts[1]), Path(parts[2]), stage1)
    return out


def av_models(specs: list[str]) -> list[AVModelInputs]:
    """`model:dataset:checkpoint` options -> inputs, in the order given."""
    out = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) != 3:
            raise typer.BadParameter(f"'{spec}': expected model:dataset:checkpoint")
        out.append(AVModelInputs(parts[0], parts[1], Path(parts[2])))
    return out


@app.command()
def main(
    va: list[str] = typer.Option(
        ...,
        help="a VA model to score, variant:checkpoint:features[:stage1_checkpoint] (repeat "
        "per variant; with the stage-1 checkpoint, its embeddings are drawn too)",
    ),
    av: list[str] = typer.Option(
        ..., help="an AV model to score, model:dataset:checkpoint (repeat per model)"
    ),
    features_dir: Path = typer.Option(..., help="the feature stores the AV checkpoints name"),
    processed_dir: Path = typer.Option(..., help="holds afewva/frames.csv and <dataset>/"),
    metrics_dir: Path = typer.Option(..., help="va.json and av.json go here"),
    plots_dir: Path = typer.Option(
        ..., help="va/ (with selection.json, the VA variant predict serves), av/, figures/"
    ),
    readme: Path = typer.Option(None, help="also refresh this README's results block"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    cfg = run_stage(lambda: from_section(EvaluateConfig, section(params, "evaluate"), "evaluate"))
    results = run_stage(
        lambda: evaluate_all(
            cfg, va_models(va), av_models(av), features_dir, processed_dir, metrics_dir, plots_dir
        )  # fmt: skip
    )
    for variant, scores in results["va"].items():
        test = scores["test"]
        typer.echo(f"va {variant}: test CCC valence {fmt(test['ccc_valence'])} "
                   f"arousal {fmt(test['ccc_arousal'])} mean {fmt(test['ccc_mean'])}")  # fmt: skip
    if results["va_selection"] is not None:
        chosen = results["va_selection"]["selected"]
        typer.echo(f"va for predict: {chosen} (best validation CCC mean, "
                   f"{fmt(results['va_selection']['scores'][chosen])})")  # fmt: skip
    for model, per_dataset in results["av"].items():
        for dataset, scores in per_dataset.items():
            test = scores["test"]
            typer.echo(f"av {model} {dataset}: accuracy {fmt(test['accuracy'])} "
                       f"macro-F1 {fmt(test['macro_f1'])}")  # fmt: skip
            if test.get("congruence_threshold") is not None:
                typer.echo(f"  congruence accuracy {fmt(test['congruence_accuracy'])} at the "
                           f"calibrated threshold {fmt(test['congruence_threshold'])} (raw at "
                           f"0.5: {fmt(test.get('congruence_accuracy_raw'))}); ECE "
                           f"{fmt(test.get('congruence_ece_raw'))} -> "
                           f"{fmt(test.get('congruence_ece'))}")  # fmt: skip
            if "congruence_auc_perceived" in test:  # crowd-rated clips (CREMA-D)
                typer.echo(f"  perceived: congruence AUC {fmt(test['congruence_auc_perceived'])} "
                           f"on {test['n_perceived_congruent']} congruent, "
                           f"{test['n_perceived_incongruent']} incongruent clips")  # fmt: skip
    if readme is not None:
        update_readme(readme, metrics_dir)


if __name__ == "__main__":
    app()
