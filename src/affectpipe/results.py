"""The README's results section, generated from `metrics/` so it cannot drift from the numbers.

`python -m affectpipe.results README.md` rewrites the block between the markers below;
`--check` fails when the README is out of date (the test suite runs it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from affectpipe.problems import NOT_APPLICABLE

START, END = "<!-- results:start -->", "<!-- results:end -->"
VA_COLUMNS = {
    "ccc_valence": "CCC valence",
    "ccc_arousal": "CCC arousal",
    "ccc_mean": "CCC mean",
    "ccc_clip_valence": "per-clip CCC valence",
    "ccc_clip_arousal": "per-clip CCC arousal",
    "rmse_valence": "RMSE valence",
    "rmse_arousal": "RMSE arousal",
}
VA_CV_COLUMNS = {
    "ccc_valence": "CCC valence",
    "ccc_arousal": "CCC arousal",
    "ccc_mean": "CCC mean",
    "ccc_clip_valence": "per-clip CCC valence",
    "ccc_clip_arousal": "per-clip CCC arousal",
}
# how stage 2 started (`cv`: a model-free baseline's folds)
VA_INIT_NAMES = {"pretrained": "stage 1 → 2", "scratch": "stage 2 only (scratch)", "cv": "–"}
AV_COLUMNS = {
    "accuracy": "accuracy",
    "uar": "UAR",
    "macro_f1": "macro-F1",
    "weighted_f1": "weighted-F1",
    "congruence_accuracy": "congr. acc.",
    "congruence_auc": "congr. AUC",
    "congruence_auc_easy": "AUC easy",
    "congruence_auc_hard": "AUC hard",
}

# Calibration: (label, metric after calibration, metric before or None); "a → b" = before → after
CALIBRATION_COLUMNS = (
    ("congr. acc. at 0.5 → calibrated", "congruence_accuracy", "congruence_accuracy_raw"),
    ("congr. F1 at 0.5 → calibrated", "congruence_f1", "congruence_f1_raw"),
    ("congr. threshold", "congruence_threshold", None),
    ("congr. ECE", "congruence_ece", "congruence_ece_raw"),
    ("congr. Brier", "congruence_brier", "congruence_brier_raw"),
    ("emotion ECE", "emotion_ece", "emotion_ece_raw"),
    ("emotion Brier", "emotion_brier", "emotion_brier_raw"),
)

CV_COLUMNS = {
    "accuracy": "accuracy",
    "uar": "UAR",
    "macro_f1": "macro-F1",
    "congruence_auc": "congr. AUC",
    "congruence_auc_easy": "AUC easy",
    "congruence_auc_hard": "AUC hard",
}
PERCEIVED_COLUMNS = {
    "congruence_auc_perceived": "congr. AUC",
    "congruence_accuracy_perceived": "congr. acc.",
    "congruence_f1_perceived": "congr. F1",
    "face_accuracy_vote": "face vs vote",
    "face_accuracy_acted": "face vs acted",
    "voice_accuracy_vote": "voice vs vote",
    "voice_accuracy_acted": "voice vs acted",
}
PERCEIVED_COUNTS = ("n_perceived_congruent", "n_perceived_incongruent")
# How a voice store is named in a model label: `audio_egemaps` -> "audio (eGeMAPS)"
STORE_NAMES = {"egemaps": "eGeMAPS", "compare": "ComParE"}


def model_label(model: str) -> str:
    """A model's row label: `<model>_<store>` (a model on another voice store, dvc.yaml's
    `audio_stores`) reads `<model> (<store>)`; the others as they are named."""
    base, _, store = model.partition("_")
    return f"{base} ({STORE_NAMES.get(store, store)})" if store else model


def fmt(value: Any) -> str:
    """3 decimals for people: NaN -> n/a, never -0.000, a dash for no value."""
    if isinstance(value, int | float):
        return "n/a" if value != value else f"{round(value, 3) + 0.0:.3f}"
    return "–"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def render(metrics_dir: Path) -> str:
    """Markdown tables of the test metrics in `metrics_dir` (va.json, av.json)."""
    parts = []
    va_path, av_path = metrics_dir / "va.json", metrics_dir / "av.json"
    if va_path.exists():
        va = {k: v for k, v in json.loads(va_path.read_text())["va"].items() if isinstance(v, dict)}
        cv_rows = _va_cv_rows(va)
        if cv_rows:
            parts.append(
                "Valence/arousal on AFEW-VA, subject-independent cross-validation (every actor "
                "tested once; CCC over each fold's test frames pooled, AVEC/ABAW style, and "
                "per clip; mean ± std across folds), each variant's stage 2 from its stage-1 "
                "checkpoint and from fresh weights with the same folds and budget:\n\n"
                + _table(["model", "init", "folds"] + list(VA_CV_COLUMNS.values()), cv_rows)
            )
        rows = [[name] + [fmt(va[name].get("test", {}).get(k)) for k in VA_COLUMNS] for name in va]
        parts.append(
            "Valence/arousal on the test actors of fold 0, the fold the served models and the "
            "figures come from:\n\n" + _table(["model"] + list(VA_COLUMNS.values()), rows)
        )
    if av_path.exists():
        recorded = json.loads(av_path.read_text())["av"]
        av = {m: {ds: v for ds, v in per_ds.items() if NOT_APPLICABLE not in v}
              for m, per_ds in recorded.items()}  # fmt: skip
        rows = [
            [f"{model_label(model)} / {ds}"]
            + [fmt(scores.get("test", {}).get(k)) for k in AV_COLUMNS]
            for model, per_ds in av.items()
            for ds, scores in per_ds.items()
        ]
        parts.append(
            "Emotion and face/voice congruence on the test fold:\n\n"
            + _table(["model / dataset"] + list(AV_COLUMNS.values()), rows)
        )
        if missing := [f"- {model_label(m)} / {ds}: {v[NOT_APPLICABLE]}"
                       for m, per_ds in recorded.items() for ds, v in per_ds.items()
                       if NOT_APPLICABLE in v]:  # fmt: skip
            parts.append("Not applicable to the data (recorded by the pipeline, not failed):\n\n"
                         + "\n".join(missing))  # fmt: skip
        cv_rows = [
            [f"{model_label(model)} / {ds}", str(scores["cv"].get("folds", "–"))]
            + [_mean_std(scores["cv"], k) for k in CV_COLUMNS]
            for model, per_ds in av.items()
            for ds, scores in per_ds.items()
            if "cv" in scores
        ]
        if cv_rows:
            parts.append(
                "The same models cross-validated over every speaker-independent fold "
                "(mean ± std across folds; `train_multimodal.folds: all`):\n\n"
                + _table(["model / dataset", "folds"] + list(CV_COLUMNS.values()), cv_rows)
            )
        cal_rows = [_calibration_row(f"{model_label(model)} / {ds}", scores)
                    for model, per_ds in av.items() for ds, scores in per_ds.items()]  # fmt: skip
        parts.append(
            "Calibration (each fold's model calibrated on its own validation fold; before → "
            "after; ECE over 15 equal-width bins; cross-validated means where every fold was "
            "trained, else the test fold):\n\n"
            + _table(["model / dataset", "on"] + [c[0] for c in CALIBRATION_COLUMNS], cal_rows)
        )
        perceived = _perceived_rows(av)
        if perceived:
            parts.append(
                "Congruence on real clips as crowd raters perceived them (CREMA-D ratings: "
                "face-only and voice-only votes apart, or both the acted emotion; each clip's own "
                "face and voice; face/voice heads against the single-emotion votes and the acted "
                "emotion), test fold and every fold (mean ± std; clips summed):\n\n"
                + _table(
                    ["model / dataset", "part", "congruent", "incongruent"]
                    + list(PERCEIVED_COLUMNS.values()),
                    perceived,
                )
            )
    return "\n\n".join(parts) if parts else "No metrics yet: run `make repro`."


def _va_cv_rows(va: dict[str, Any]) -> list[list[str]]:
    """Rows of the cross-validated VA table: each variant from stage 1, then from scratch."""
    return [
        [name, VA_INIT_NAMES[init], str(scores[init].get("folds", "–"))]
        + [_mean_std(scores[init], k) for k in VA_CV_COLUMNS]
        for name, scores in va.items()
        for init in VA_INIT_NAMES
        if init in scores
    ]


def _perceived_rows(av: dict[str, Any]) -> list[list[str]]:
    """Rows of the perceived table: the test fold, then the cross-validated figures."""
    rows = []
    for model, per_ds in av.items():
        for ds, scores in per_ds.items():
            test, cv = scores.get("test", {}), scores.get("cv", {})
            if "congruence_auc_perceived" in test:
                counts = [str(test.get(k, "–")) for k in PERCEIVED_COUNTS]
                values = [fmt(test.get(k)) for k in PERCEIVED_COLUMNS]
                rows.append([f"{model_label(model)} / {ds}", "test fold", *counts, *values])
            if "congruence_auc_perceived_mean" in cv:
                counts = [str(cv.get(k, "–")) for k in PERCEIVED_COUNTS]
                values = [_mean_std(cv, k) for k in PERCEIVED_COLUMNS]
                rows.append(
                    [
                        f"{model_label(model)} / {ds}",
                        f"{cv.get('folds', '–')} folds",
                        *counts,
                        *values,
                    ]
                )
    return rows


def _calibration_row(name: str, scores: dict[str, Any]) -> list[str]:
    """One row of the calibration table: cross-validated means if there are, else the test."""
    if "cv" in scores:
        on = f"{scores['cv'].get('folds', '–')} folds"
        cv = scores["cv"]
        values = {k.removesuffix("_mean"): v for k, v in cv.items() if k.endswith("_mean")}
    else:
        on, values = "test fold", scores.get("test", {})
    cells = []
    for _, after, before in CALIBRATION_COLUMNS:
        if values.get(after) is None:
            cells.append("–")
        elif before is None or values.get(before) is None:
            cells.append(fmt(values[after]))
        else:
            cells.append(f"{fmt(values[before])} → {fmt(values[after])}")
    return [name, on, *cells]


def _mean_std(cv: dict[str, Any], key: str) -> str:
    mean, std = cv.get(f"{key}_mean"), cv.get(f"{key}_std")
    return "–" if mean is None else f"{fmt(mean)} ± {fmt(std)}"


def update_readme(readme: Path, metrics_dir: Path) -> bool:
    """Rewrite the results block; returns whether the file changed."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme}: no '{START}' ... '{END}' block to fill")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render(metrics_dir)}\n{END}{tail}"
    changed = new != text
    if changed:
        readme.write_text(new)
    return changed


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [a for a in argv if not a.startswith("--")]
    readme = Path(paths[0] if paths else "README.md")
    if check:
        current = readme.read_text()
        expected = current.split(START, 1)[0] + START + "\n" + render(Path("metrics")) + "\n" + END
        if expected not in current:
            print(f"{readme}: results block is out of date; run python -m affectpipe.results")
            return 1
        return 0
    update_readme(readme, Path("metrics"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
