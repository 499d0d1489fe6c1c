"""Test-set evaluation of every trained model: flat metrics, plot data and figures.

This is the only place the test split is scored. Each model runs once over its test split;
metrics go to one nested JSON per task (`va`, `av`) so that `dvc metrics` shows flat, stable
names such as `va.cached.test.ccc_mean` or `av.fusion.ravdess.test.congruence_auc_hard`.
Beside them it records which VA variant `predict` serves, chosen on validation
(`affectpipe.va_selection`). Each VA variant is scored on every fold's test actors, trained from
its stage-1 checkpoint (`pretrained`) and from fresh weights (`scratch`): mean and std across
folds; the figures come from the served fold's model (fold 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from affectpipe import metrics, plots
from affectpipe.av_inference import predict_av
from affectpipe.config import params_section
from affectpipe.data.av_pairs import dataset_classes
from affectpipe.data.labels import EMOTIONS
from affectpipe.models.checkpoint import not_applicable
from affectpipe.models.va import PIPELINE_TITLES, PIPELINES
from affectpipe.perceived_eval import evaluate_perceived
from affectpipe.problems import NOT_APPLICABLE, InputProblem, write_json
from affectpipe.va_selection import (
    SELECTION_FILE,
    SERVED_FOLD,
    cross_fold_score,
    fold_checkpoints,
    write_selection,
)

VA_CV_KEYS = ("ccc_valence", "ccc_arousal", "ccc_mean", "ccc_clip_valence", "ccc_clip_arousal",
              "rmse_valence", "rmse_arousal")  # fmt: skip
VA_INITS = ("pretrained", "scratch")  # stage 2 from the stage-1 checkpoint | from fresh weights


@dataclass(frozen=True)
class VAModels:
    """The VA checkpoints to score: `<variant>/fold<k>/` under `finetune` (from stage 1) and,
    when given, under `scratch` (the same training from fresh weights); under `pretrain`, when
    given, the stage-1 checkpoints, whose fold-0 embeddings are drawn beside the fine-tuned
    ones."""

    finetune: Path
    scratch: Path | None
    pretrain: Path | None = None

    def variants(self) -> list[str]:
        """Variant folders, the known pipelines first (`PIPELINES` order), then by name."""
        names = [d.name for d in self.finetune.iterdir() if d.is_dir()] \
            if self.finetune.is_dir() else []  # fmt: skip
        return sorted(names, key=lambda n: (PIPELINES.index(n) if n in PIPELINES else
                                            len(PIPELINES), n))  # fmt: skip

    def roots(self) -> dict[str, Path]:
        roots = {"pretrained": self.finetune, "scratch": self.scratch}
        return {init: root for init, root in roots.items() if root is not None}


STAGE_TITLES = {"pretrain": "after stage 1 (contrastive)", "finetune": "after stage 2 (CCC)"}


@dataclass(frozen=True)
class AVModelInputs:
    """One trained audio-visual model to score: its checkpoint folder (with `fold<k>/` beside it
    when cross-validated), on the dataset it was trained on."""

    model: str  # fusion | audio | video
    dataset: str  # ravdess | cremad
    checkpoint: Path


@params_section
class EvaluateConfig:
    """params.yaml `evaluate`: how the figures are drawn (which models are scored is the
    stage's inputs, from dvc.yaml)."""

    embedding_plots: list[Literal["pca", "umap"]]
    trace_clips: int  # clips drawn in the VA trace figure
    seed: int  # UMAP layout


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe floats rounded to 6 digits (stable diffs); NaN becomes null."""
    out = {}
    for key, value in values.items():
        if isinstance(value, float | np.floating):
            value = None if not np.isfinite(value) else round(float(value), 6)
        elif isinstance(value, np.integer):
            value = int(value)
        out[key] = value
    return out


def per_clip_table(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per clip: CCC, Pearson and RMSE of valence and arousal within the clip."""
    rows = []
    for clip, part in frames.groupby("clip", sort=True):
        row: dict[str, Any] = {"clip": clip, "frames": len(part)}
        for dim in ("valence", "arousal"):
            t, p = part[f"{dim}_true"], part[f"{dim}_pred"]
            row |= {f"ccc_{dim}": metrics.ccc(t, p), f"pearson_{dim}": metrics.pearson(t, p),
                    f"rmse_{dim}": metrics.rmse(t, p)}  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows).round(6)


def mean_baseline(train_va: np.ndarray, test: pd.DataFrame) -> dict[str, Any]:
    """Predict the training mean for every test frame (CCC is 0 by construction)."""
    true = test[["valence_true", "arousal_true"]].to_numpy()
    pred = np.broadcast_to(train_va.mean(0), true.shape)
    return _clean(metrics.va_report(true, pred, test["clip"].to_numpy()))


def evaluate_va_variant(
    variant: str, frames: pd.DataFrame, embeddings: dict[str, Any] | None,
    cfg: EvaluateConfig, plots_dir: Path,
) -> dict[str, Any]:  # fmt: skip
    """Metrics of one VA model from its per-frame test predictions; writes its plots."""
    report = _va_report(frames)
    name = PIPELINE_TITLES.get(variant, variant)
    frames.round(6).to_csv(plots_dir / "va" / f"{variant}_frames.csv", index=False)
    per_clip_table(frames).to_csv(plots_dir / "va" / f"{variant}_clips.csv", index=False)
    figures = plots_dir / "figures"
    plots.plot_va_space(frames, figures / f"va_space_{variant}.png", f"{name}: test frames")
    plots.plot_va_traces(frames, figures / f"va_traces_{variant}.png", f"{name}: test clips",
                         max_clips=cfg.trace_clips)  # fmt: skip
    if embeddings is not None:
        plot_va_embeddings(variant, "finetune", embeddings, cfg, figures)
    return _clean(report)


def plot_va_embeddings(
    variant: str, stage: str, embeddings: dict[str, Any], cfg: EvaluateConfig, figures: Path
) -> None:
    """The test frames' embeddings z (one point per frame) and the clip embeddings g (one point
    per clip, coloured by the clip's mean valence and arousal) of one stage's checkpoint
    (`embed_va`), by each projection in `cfg.embedding_plots`:
    `va_embeddings_<method>_<variant>_<stage>.png` and
    `va_clip_embeddings_<method>_<variant>_<stage>.png`. Stage 1's show what the contrastive
    objective alone arranged; stage 2's, what fine-tuning made of it."""
    name, when = PIPELINE_TITLES.get(variant, variant), STAGE_TITLES[stage]
    # kind: (embedding, its table, what a point is, point size: clips are few, drawn larger)
    parts = {"embeddings": ("z", "frames", "test frame", 8),
             "clip_embeddings": ("g", "clips", "test clip", 30)}  # fmt: skip
    for method in cfg.embedding_plots:
        for kind, (key, table, what, size) in parts.items():
            colour = {d: embeddings[table][d].to_numpy() for d in ("valence", "arousal")}
            plots.plot_embeddings(
                embeddings[key], colour, figures / f"va_{kind}_{method}_{variant}_{stage}.png",
                f"{name}: {what} embeddings {key} {when}, {method.upper()}", method, cfg.seed,
                point_size=size,
            )  # fmt: skip


def cross_validate_av(
    ckpt_dir: Path, test_frames: dict[int, pd.DataFrame], features_dir: Path,
    processed_dir: Path, classes: list[int],
) -> tuple[dict[str, Any], dict[int, pd.DataFrame]]:  # fmt: skip
    """Test metrics of every fold's model (`fold<k>/` beside the configured fold's, whose test
    predictions `test_frames` already holds) and their mean and std across folds; and every
    fold's test predictions (each calibrated by its own checkpoint), by fold."""
    frames = dict(test_frames)
    for folder in sorted(p for p in ckpt_dir.glob("fold*") if p.is_dir()):
        by_split, prov = predict_av(folder, features_dir, processed_dir)
        frames[prov["test_fold"]] = by_split["test"]
    summary = metrics.fold_summary(
        {k: metrics.av_test_metrics(frames[k], classes) for k in sorted(frames)}
    )
    return summary, frames


def evaluate_av_model(
    model: str, dataset: str, ckpt_dir: Path, features_dir: Path, processed_dir: Path,
    plots_dir: Path,
) -> dict[str, Any]:  # fmt: skip
    """Metrics of one audio-visual model on its test pairs; writes confusion data and ROC; with a
    model per fold (`train_multimodal.folds: all`), also the cross-validated figures. A model
    the data cannot support (`models.checkpoint.write_not_applicable`) is recorded so."""
    if (why := not_applicable(ckpt_dir)) is not None:
        return {NOT_APPLICABLE: why}
    frames, prov = predict_av(ckpt_dir, features_dir, processed_dir, splits=("test", "train"))
    test, train = frames["test"], frames["train"]
    classes = sorted(int(c) for c in set(train["face_emotion"]) | set(test["face_emotion"]))
    report = metrics.av_test_metrics(test, classes) | metrics.majority_metrics(train, test, classes)
    congruent = test[test["congruent"] == 1]
    plots.confusion_plot_data(
        congruent["emotion_true"].to_numpy(), congruent["emotion_pred"].to_numpy(), list(EMOTIONS)
    ).to_csv(plots_dir / "av" / f"{model}_{dataset}_confusion.csv", index=False)
    if "congruence_prob" in test:
        plots.plot_congruence_roc(
            test, plots_dir / "figures" / f"congruence_roc_{model}_{dataset}.png",
            f"{model} on {dataset}: face/voice congruence (test fold)",
        )  # fmt: skip
    result: dict[str, Any] = {
        "test": _clean({k: v for k, v in report.items() if not k.startswith("cm_")})
    }
    pooled, where = test, "test fold"
    if any(p.is_dir() for p in ckpt_dir.glob("fold*")):  # training ran every fold
        cv, by_fold = cross_validate_av(ckpt_dir, {prov["test_fold"]: test}, features_dir,
                                        processed_dir, dataset_classes(dataset))  # fmt: skip
        write_json(plots_dir / "av" / f"{model}_{dataset}_cv.json", cv)
        result["cv"] = _clean({k: v for k, v in cv.items() if k != "per_fold"})
        pooled = pd.concat([by_fold[k] for k in sorted(by_fold)], ignore_index=True)
        where = f"every fold's test pairs, {len(by_fold)} folds"
    if "congruence_prob" in test:  # each pair scored once, by the model that never saw it
        plots.plot_reliability(
            pooled, plots_dir / "figures" / f"reliability_{model}_{dataset}.png",
            f"{model} on {dataset}: calibration on {where}",
        )  # fmt: skip
    perceived = None
    if "congruence_prob" in test:  # crowd-perceived congruence (CREMA-D): fusion models only
        name = plots_dir / "av" / f"{model}_{dataset}_perceived"
        out_json, out_csv = name.with_suffix(".json"), name.with_suffix(".csv")
        perceived = evaluate_perceived(ckpt_dir, features_dir, processed_dir, out_json, out_csv)
    for part, scores in (perceived or {}).items():
        if part in result:
            result[part] = _clean(result[part] | scores)
    return result


def inputs_file(ckpt_dir: Path) -> Path:
    """The feature store a VA checkpoint was trained on (recorded by the VA stages)."""
    from affectpipe.models.checkpoint import META_FILE

    meta_path = ckpt_dir / META_FILE
    try:
        path = json.loads(meta_path.read_text(encoding="utf-8"))["provenance"]["inputs_file"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputProblem(meta_path, f"no recorded 'inputs_file' ({e!r})") from None
    return Path(path)


def train_va_of(ckpt_dir: Path, inputs: Path) -> np.ndarray:
    """(N, 2) valence/arousal of every training frame of the checkpoint's fold."""
    from affectpipe.data.va_clips import VAFold, open_inputs, split_clips
    from affectpipe.models.checkpoint import META_FILE

    meta = json.loads((ckpt_dir / META_FILE).read_text(encoding="utf-8"))
    fold = VAFold.from_record(meta["provenance"].get("fold"))
    with open_inputs(inputs, meta["config"]["model"]["pipeline"]) as reader:
        return np.concatenate([c.va for c in split_clips(reader, "train", fold)])


def _va_report(frames: pd.DataFrame) -> dict[str, Any]:
    return metrics.va_report(
        frames[["valence_true", "arousal_true"]].to_numpy(),
        frames[["valence_pred", "arousal_pred"]].to_numpy(),
        frames["clip"].to_numpy(),
    )


def _cv(per_fold: dict[str, dict[str, Any]], path: Path) -> dict[str, Any]:
    """Mean and std across folds (`fold<k>` keys); the per-fold figures go to `path`."""
    summary = metrics.fold_summary(
        {int(k.removeprefix("fold")): m for k, m in per_fold.items()}, VA_CV_KEYS
    )
    write_json(path, summary)
    return _clean({k: v for k, v in summary.items() if k != "per_fold"})


def evaluate_va(cfg: EvaluateConfig, models: VAModels, plots_dir: Path) -> dict[str, Any]:
    """Every VA variant on every fold's test actors, from stage 1 and from scratch, with the
    predict-the-training-mean baseline; `<variant>.test` and the figures are the served fold's
    (fold 0, from stage 1), `<variant>.<init>` the mean and std across folds."""
    from affectpipe.va_inference import embed_va, predict_va

    out: dict[str, Any] = {}
    baseline: dict[str, dict[str, Any]] = {}
    for variant in models.variants():
        entry: dict[str, Any] = {}
        for init, root in models.roots().items():
            per_fold = {}
            for name, ckpt in fold_checkpoints(root / variant).items():
                inputs = inputs_file(ckpt)
                frames = predict_va(ckpt, inputs, split="test")
                per_fold[name] = _va_report(frames)
                if init == "pretrained" and name == SERVED_FOLD:
                    embeddings = embed_va(ckpt, inputs, split="test") \
                        if cfg.embedding_plots else None  # fmt: skip
                    entry["test"] = evaluate_va_variant(variant, frames, embeddings, cfg,
                                                        plots_dir)  # fmt: skip
                    stage1 = models.pretrain / variant / SERVED_FOLD if models.pretrain else None
                    if embeddings is not None and stage1 is not None and stage1.is_dir():
                        first = embed_va(stage1, inputs, split="test")  # the same frames
                        if first is not None:
                            plot_va_embeddings(variant, "pretrain", first, cfg,
                                               plots_dir / "figures")  # fmt: skip
                if init == "pretrained":  # the same test frames for every variant
                    baseline[name] = mean_baseline(train_va_of(ckpt, inputs), frames)
            entry[init] = _cv(per_fold, plots_dir / "va" / f"{variant}_{init}_cv.json")
        out[variant] = entry
    if baseline:
        out["mean_baseline"] = {
            "test": baseline.get(SERVED_FOLD, {}),
            "cv": _cv(baseline, plots_dir / "va" / "mean_baseline_cv.json"),
        }
        out["n_folds"] = len(baseline)
    return out


def evaluate_all(
    cfg: EvaluateConfig, va_models: VAModels, av_models: list[AVModelInputs],
    features_dir: Path, processed_dir: Path, metrics_dir: Path, plots_dir: Path,
) -> dict[str, Any]:  # fmt: skip
    """Score every given VA and AV model; write `metrics/va.json`, `metrics/av.json` and plots,
    and record the VA variant with the best validation score for `predict`."""
    for sub in ("va", "av", "figures"):
        (plots_dir / sub).mkdir(parents=True, exist_ok=True)
    scores = {v: cross_fold_score(va_models.finetune / v) for v in va_models.variants()}
    selection = write_selection(plots_dir / SELECTION_FILE, scores) if scores else None
    va = evaluate_va(cfg, va_models, plots_dir)
    av: dict[str, Any] = {}
    for m in av_models:
        av.setdefault(m.model, {})[m.dataset] = evaluate_av_model(
            m.model, m.dataset, m.checkpoint, features_dir, processed_dir / m.dataset, plots_dir
        )
    write_json(metrics_dir / "va.json", {"va": va})
    write_json(metrics_dir / "av.json", {"av": av})
    return {"va": va, "av": av, "va_selection": selection}
