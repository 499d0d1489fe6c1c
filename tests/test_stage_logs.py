"""Stage logs stay short: a summary line each, the full report in its file."""

from __future__ import annotations

import importlib.util

from tests.pipeline_repo import REPO


def stage_module(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_preprocess_summarises_its_report_in_one_line_of_counts():
    report = {
        "clips": 384,
        "pairs": 384,
        "crop": "foreground",
        "settings": {"n_frames": 16},
        "folds": {"0": [1, 2]},
        "splits": {"train": {"clips": 256, "actors": [3]}, "test": {"clips": 64}},
        "notes": ["a", "b"],
        "center_fallback": [],
        "skipped": [{"path": "x", "reason": "y"}],
    }
    line = stage_module("preprocess").summary(report)
    assert line == "384 clips, 384 pairs, train 256 clips, test 64 clips, 2 notes"
    assert "\n" not in line


def test_numbers_print_without_negative_zero():
    from affectpipe.results import fmt

    assert [fmt(-0.0), fmt(-0.0001), fmt(0.12345), fmt(float("nan")), fmt(None)] == [
        "0.000",
        "0.000",
        "0.123",
        "n/a",
        "–",
    ]
