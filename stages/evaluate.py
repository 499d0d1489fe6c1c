"""Stage `evaluate`: score every trained model once on its test split; write metrics and plots."""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.evaluate import VA_INITS, AVModelInputs, EvaluateConfig, VAModels, evaluate_all
from affectpipe.problems import NOT_APPLICABLE
from affectpipe.results import fmt, update_readme
from affectpipe.stage import run_stage

app = typer.Typer(add_completion=False)


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
    va: Path = typer.Option(
        ..., help="the VA checkpoints from stage 1: <variant>/fold<k>/, one folder per variant"
    ),
    va_scratch: Path = typer.Option(
        None, help="the same variants trained from fresh weights (what stage 1 adds)"
    ),
    va_pretrain: Path = typer.Option(
        None, help="the stage-1 checkpoints (<variant>/fold<k>/): fold 0's embeddings drawn too"
    ),
    av: list[str] = typer.Option(
        ..., help="an AV model to score, model:dataset:checkpoint (repeat per model)"
    ),
    features_dir: Path = typer.Option(..., help="the feature stores the AV checkpoints name"),
    processed_dir: Path = typer.Option(..., help="holds each AV dataset's <dataset>/"),
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
            cfg,
            VAModels(va, va_scratch, va_pretrain),
            av_models(av),
            features_dir,
            processed_dir,
            metrics_dir,
            plots_dir,
        )
    )
    for variant, scores in results["va"].items():
        if not isinstance(scores, dict):
            continue
        for init in VA_INITS:
            if init in scores:
                cv = scores[init]
                typer.echo(f"va {variant} {init}: test CCC mean {fmt(cv.get('ccc_mean_mean'))} "
                           f"± {fmt(cv.get('ccc_mean_std'))} over {cv['folds']} folds")  # fmt: skip
    if results["va_selection"] is not None:
        chosen = results["va_selection"]["selected"]
        typer.echo(f"va for predict: {chosen} (best validation CCC mean, "
                   f"{fmt(results['va_selection']['scores'][chosen])})")  # fmt: skip
    for model, per_dataset in results["av"].items():
        for dataset, scores in per_dataset.items():
            if NOT_APPLICABLE in scores:
                typer.echo(f"av {model} {dataset}: not applicable: {scores[NOT_APPLICABLE]}")
                continue
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
