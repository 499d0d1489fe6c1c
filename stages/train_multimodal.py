"""Stage `train_multimodal`: cached face/voice embeddings -> a fusion or single-modality model.

dvc repro train_multimodal@fusion-ravdess   # dvc.yaml gives every path; or audio | video, cremad
dvc repro train_multimodal_audio@egemaps-ravdess   # the audio model on another voice store

The model of preprocessing's test fold goes to the top of `--ckpt-dir`; with
`train_multimodal.folds: all` the model of every other fold k goes to `fold<k>/`. Each folder
holds the checkpoint and `train.json` (validation figures); `evaluate` scores the test folds.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import typer

from affectpipe.config import from_section, load_params, section
from affectpipe.data.av_pairs import CLIP_COLUMNS, SIDES, feature_paths, read_table
from affectpipe.data.pairs import PairConfig
from affectpipe.features.extract import config_class, expected_attrs
from affectpipe.features.store import not_applicable_reason
from affectpipe.models.checkpoint import write_not_applicable
from affectpipe.models.load import check_store_weights
from affectpipe.models.multimodal import MODALITIES
from affectpipe.problems import write_json
from affectpipe.stage import run_stage
from affectpipe.train.multimodal import loop_config, stage_config, train_one

app = typer.Typer(add_completion=False)


@app.command()
def main(
    model: str = typer.Argument(..., help=" | ".join(MODALITIES)),
    dataset: str = typer.Argument(..., help="ravdess | cremad"),
    processed_dir: Path = typer.Option(..., help="the dataset's clips.csv and pairs.csv"),
    features_dir: Path = typer.Option(..., help="holds <face|voice_features>_<dataset>.h5"),
    ckpt_dir: Path = typer.Option(..., help="checkpoint folder (fold<k>/ inside)"),
    live_dir: Path = typer.Option(..., help="dvclive folder"),
    voice_features: str | None = typer.Option(
        None, help="the voice store to read instead of train_multimodal.voice_features"
    ),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    name = "train_multimodal"
    cfg, own = run_stage(lambda: stage_config(section(params, name), model))
    if voice_features is not None:  # dvc.yaml's audio models on other stores (e.g. eGeMAPS)
        cfg = dataclasses.replace(cfg, voice_features=voice_features)
    loop = run_stage(lambda: loop_config(cfg.train, section(params, "seed")))
    pairs = f"preprocess.{dataset}.pairs"  # other folds redraw their pairs the same way
    pair_cfg = run_stage(lambda: from_section(PairConfig, section(params, pairs), pairs))
    expect = run_stage(lambda: {  # run by hand too, features made with other params are refused
        f"{side}_features": store_attrs(params, store, dataset, processed_dir)
        for side, store in (("face", cfg.face_features), ("voice", cfg.voice_features))
    })  # fmt: skip
    stores = feature_paths(features_dir, dataset, cfg.face_features, cfg.voice_features)
    run_stage(lambda: [check_store_weights(path) for path in stores])
    reasons = run_stage(lambda: [
        why for side, path in zip(("face", "voice"), stores, strict=True)
        if side in SIDES[model] and (why := not_applicable_reason(path, expect[f"{side}_features"]))
    ])  # fmt: skip
    if reasons:  # an audio-only or video-only release: recorded, not failed
        for folder in (ckpt_dir, live_dir):
            write_not_applicable(folder, model, dataset, "; ".join(reasons))
        typer.echo(f"train_multimodal {model} {dataset}: not applicable: {'; '.join(reasons)}")
        return

    def train(folder: Path, live: Path | None, fold: int | None, redraw: PairConfig | None):
        paths = (processed_dir, features_dir, folder, live)
        return run_stage(
            lambda: train_one(model, dataset, cfg, own, loop, *paths, fold, redraw, expect)
        )

    report = train(ckpt_dir, live_dir, None, None)  # preprocessing's test fold, as written
    reports, folders = {report["test_fold"]: report}, {report["test_fold"]: ckpt_dir}
    if cfg.folds == "all":
        clips = run_stage(lambda: read_table(processed_dir / "clips.csv", CLIP_COLUMNS))
        for k in sorted(int(f) for f in clips.fold.unique()):
            if k not in reports:
                folders[k] = ckpt_dir / f"fold{k}"
                reports[k] = train(folders[k], None, k, pair_cfg)
        report["folds"] = {f"fold{k}": reports[k]["val"] for k in sorted(reports)}
    if os.environ.get("RANK", "0") == "0":  # several processes: the main one writes
        for k, fold_report in reports.items():
            write_json(folders[k] / "train.json", fold_report)
    val = ", ".join(f"{k} {v:.3f}" for k, v in sorted(report["val"].items()))
    typer.echo(f"train_multimodal {model} {dataset}: best epoch {report['best_epoch']}: {val}")
    if len(reports) > 1:
        scores = ", ".join(f"{reports[k]['val']['score']:.3f}" for k in sorted(reports))
        typer.echo(f"  {len(reports)} folds, val/score per fold: {scores}")
    for item in report["skipped"][:20]:
        typer.echo(f"  skipped {item['path']}: {item['reason']}", err=True)


def store_attrs(params: dict, store: str, dataset: str, processed_dir: Path) -> dict:
    """What the store `<store>_<dataset>.h5` records when `extract.<store>` made it."""
    key = f"extract.{store}"
    extract_cfg = from_section(config_class(store), section(params, key), key)
    return expected_attrs(store, extract_cfg, dataset, processed_dir)


if __name__ == "__main__":
    app()
