"""Project the wall time of the full real datasets on this machine from two real-size runs.

`bench/real_size.py` runs every stage at real size on a few actors (`--scale 1`) and on twice
as many (`--scale 2`). Each stage's time is fitted as start-up + per-unit cost x data size,
t = a + b * s, from those two points (b clamped at 0 where noise makes the second run
faster), and evaluated at the full releases' sizes, each stage in its dataset's unit:

| dataset | unit | full release |
|---|---|---|
| AFEW-VA (preprocess, extract, va_cache, pretrain, finetune) | frames | 30,051 |
| RAVDESS | media files (01 + 02 mp4, 03 wav) | 4,320 |
| CREMA-D | clips (FLV + wav) | 7,442 |

evaluate reads every dataset: it is projected with the largest of the three factors (an upper
bound). download is left out: on real data it is a transfer, not the synthetic writer timed
here. The training stages ran short schedules (the overrides in the run's JSON); they are
projected twice, at the run's schedule and scaled to params.yaml's by the ratio of optimiser
steps (epochs x windows per epoch; epochs for train_multimodal): an upper bound, since
start-up, loading and validation do not grow with the schedule.

    python bench/real_size.py --scale 1 --out bench/results/real_size.json
    python bench/real_size.py --scale 2 --out bench/results/real_size_x2.json
    python bench/fullrun.py        # prints the table, writes bench/results/fullrun.json
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FULL = {"afewva": 30_051, "ravdess": 2_880 + 1_440, "cremad": 7_442}
VA_STAGES = ("va_cache", "pretrain", "finetune")  # AFEW-VA's, though their names do not say so
# The AFEW-VA pipeline as the reference implementation times it (about 3.5 h on one A100):
# Pipeline A with LoRA, stage 1 then stage 2, and what they need (`dvc dag finetune@lora`);
# here each training stage runs every fold.
SEED_PIPELINE = ("preprocess@afewva", "va_cache", "pretrain@lora", "finetune@lora")
app = typer.Typer(add_completion=False)


def dataset_of(stage: str) -> str | None:
    """The dataset whose size a stage's work follows; None for evaluate (all of them)."""
    for name in FULL:
        if name in stage:
            return name
    if stage.split("@")[0].startswith(VA_STAGES):
        return "afewva"
    return None


def run_units(inputs: dict[str, int]) -> dict[str, int]:
    """A run's size in each dataset's unit."""
    return {
        "afewva": inputs["afewva_frames"],
        "ravdess": inputs["ravdess_videos"] + inputs["ravdess_wavs"],
        "cremad": inputs["cremad_clips"],
    }


def override_value(overrides: list[str], key: str) -> float:
    return float(next(o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}=")))


def schedule_ratio(stage: str, overrides: list[str], params: dict) -> float:
    """params.yaml's optimiser steps over the run's, for a training stage; 1 otherwise."""
    section = stage.split("@")[0]
    if section.startswith("train_multimodal"):  # train_multimodal_audio too
        key = "train_multimodal.train.epochs"
        return params["train_multimodal"]["train"]["epochs"] / override_value(overrides, key)
    if section in ("pretrain", "finetune", "finetune_scratch"):
        own = "pretrain" if section == "pretrain" else "finetune"
        default = params[own]["epochs"] * params[own]["window"]["windows_per_epoch"]
        ran = override_value(overrides, f"{own}.epochs") * override_value(
            overrides, f"{own}.window.windows_per_epoch"
        )
        return default / ran
    return 1.0


def project(small: dict, large: dict, params: dict) -> dict[str, object]:
    """Each stage's fit and its projection to the full releases (seconds)."""
    units_small, units_large = run_units(small["inputs"]), run_units(large["inputs"])
    factor = {d: FULL[d] / units_small[d] for d in FULL}
    large_wall = {r["stage"]: r["wall_s"] for r in large["stages"]}
    rows = []
    for r in small["stages"]:
        stage = r["stage"]
        if stage.startswith("download"):
            continue
        dataset = dataset_of(stage)
        grow = (units_large[dataset] / units_small[dataset]) if dataset else large["scale"]
        full = factor[dataset] if dataset else max(factor.values())
        per_unit = max(0.0, (large_wall[stage] - r["wall_s"]) / (grow - 1))  # per run-1 size
        at_run_schedule = r["wall_s"] + per_unit * (full - 1)
        ratio = schedule_ratio(stage, small["overrides"], params)
        rows.append({
            "stage": stage,
            "dataset": dataset or "all",
            "wall_s": [r["wall_s"], large_wall[stage]],
            "full_s": round(at_run_schedule),
            "full_default_schedule_s": round(at_run_schedule * ratio),
        })  # fmt: skip

    def seconds(keep) -> int:
        return sum(r["full_default_schedule_s"] for r in rows if keep(r))

    return {
        "full_sizes": FULL,
        "run_sizes": [units_small, units_large],
        "stages": rows,
        "total_h": round(sum(r["full_s"] for r in rows) / 3600, 1),
        "total_default_schedule_h": round(seconds(lambda r: True) / 3600, 1),
        "default_schedule_s": {  # by the dataset a stage reads (evaluate: all)
            **{d: seconds(lambda r, d=d: r["dataset"] == d) for d in [*FULL, "all"]},
            "seed_pipeline": seconds(lambda r: r["stage"] in SEED_PIPELINE),
        },
    }


@app.command()
def main(
    small: Path = typer.Option(RESULTS / "real_size.json", help="bench/real_size.py --scale 1"),
    large: Path = typer.Option(RESULTS / "real_size_x2.json", help="--scale 2 of the same"),
    out: Path = typer.Option(RESULTS / "fullrun.json"),
) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    result = project(json.loads(small.read_text()), json.loads(large.read_text()), params)
    print("| stage | run x1 (s) | run x2 (s) | full, run's schedule | full, params.yaml's |")
    print("|---|---:|---:|---:|---:|")
    for r in result["stages"]:
        full, default = r["full_s"] / 60, r["full_default_schedule_s"] / 60
        print(f"| {r['stage']} | {r['wall_s'][0]:.0f} | {r['wall_s'][1]:.0f} | "
              f"{full:.0f} min | {default:.0f} min |")  # fmt: skip
    print(f"total: {result['total_h']} h at the run's schedules, "
          f"{result['total_default_schedule_h']} h at params.yaml's (upper bound)")  # fmt: skip
    for part, secs in result["default_schedule_s"].items():
        print(f"  {part}: {secs / 3600:.1f} h at params.yaml's schedules")
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    app()
