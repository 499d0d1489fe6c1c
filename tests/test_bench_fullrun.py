"""The full-dataset projection (`bench/fullrun.py`) and the real-size run's plan
(`bench/real_size.py`): the fit is start-up + per-unit cost, each stage in its dataset's unit,
training scaled to params.yaml's schedule; the run covers every stage of the DAG."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from tests.pipeline_repo import REPO


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fullrun():
    return load("fullrun")


def run(scale: int, walls: dict[str, float], overrides: list[str]) -> dict:
    inputs = {"afewva_frames": 100 * scale, "ravdess_videos": 20 * scale,
              "ravdess_wavs": 10 * scale, "cremad_clips": 50 * scale}  # fmt: skip
    stages = [{"stage": s, "wall_s": w, "peak_rss_mib": 1} for s, w in walls.items()]
    return {"scale": scale, "inputs": inputs, "stages": stages, "overrides": overrides}


def test_each_stage_is_projected_in_its_datasets_unit(fullrun):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    small = run(1, {"download@ravdess": 5, "preprocess@ravdess": 10, "extract@clip_afewva": 20,
                    "evaluate": 3}, [])  # fmt: skip
    large = run(2, {"download@ravdess": 9, "preprocess@ravdess": 16, "extract@clip_afewva": 35,
                    "evaluate": 2}, [])  # fmt: skip
    rows = {r["stage"]: r for r in fullrun.project(small, large, params)["stages"]}
    assert "download@ravdess" not in rows  # a transfer on real data, not timed here
    # 4 s start-up + 6 s per 30 files; the full release has 4,320 files
    assert rows["preprocess@ravdess"]["full_s"] == round(4 + 6 * 4320 / 30)
    assert rows["extract@clip_afewva"]["full_s"] == round(5 + 15 * 30051 / 100)
    # faster the second time (noise): no per-unit cost, never a negative one
    assert rows["evaluate"]["full_s"] == 3


def test_training_is_scaled_to_params_schedule_by_optimiser_steps(fullrun):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    overrides = ["pretrain.epochs=1", "pretrain.window.windows_per_epoch=16",
                 "train_multimodal.train.epochs=5"]  # fmt: skip
    small = run(1, {"pretrain@lora": 10, "train_multimodal@audio-cremad": 10}, overrides)
    large = run(2, {"pretrain@lora": 10, "train_multimodal@audio-cremad": 10}, overrides)
    rows = {r["stage"]: r for r in fullrun.project(small, large, params)["stages"]}
    steps = params["pretrain"]["epochs"] * params["pretrain"]["window"]["windows_per_epoch"]
    assert rows["pretrain@lora"]["full_default_schedule_s"] == round(10 * steps / 16)
    epochs = params["train_multimodal"]["train"]["epochs"]
    assert rows["train_multimodal@audio-cremad"]["full_default_schedule_s"] == round(
        10 * epochs / 5
    )


def test_the_real_size_run_covers_every_stage_after_its_deps():
    real_size = load("real_size")
    order = real_size.stage_order(REPO)
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert len(order) == len(set(order))
    assert {s.split("@")[0] for s in order} == set(dvc)
    assert order[0].startswith("download") and order[-1] == "evaluate"
    assert order.index("va_cache") > order.index("extract@clip_afewva")
    assert order.index("finetune@lora") > order.index("pretrain@lora")


def test_subtotals_split_the_total_by_dataset_and_give_the_reference_pipeline(fullrun):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    walls = {"preprocess@afewva": 10, "va_cache": 20, "extract@clip_afewva": 5,
             "preprocess@cremad": 7, "evaluate": 3}  # fmt: skip
    result = fullrun.project(run(1, walls, []), run(2, walls, []), params)
    # constant walls: no per-unit cost, each stage projects to its own time
    assert result["default_schedule_s"] == {
        "afewva": 35, "ravdess": 0, "cremad": 7, "all": 3, "seed_pipeline": 30}  # fmt: skip
