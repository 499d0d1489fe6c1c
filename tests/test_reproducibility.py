"""The reproducibility contract's checker: exact where exact, tolerance across platforms, named
moves; and the platform record the committed results carry."""

from __future__ import annotations

import json
import math

import pytest

from affectpipe.reproducibility import (
    PLATFORM_FILE,
    TOLERANCES,
    compare_locks,
    compare_metrics,
    metric_family,
    platform_differences,
    platform_record,
)
from tests.pipeline_repo import REPO


def lock(**outs: str) -> dict:
    """A dvc.lock with one stage per keyword: stage name (`__` for `@`) -> output md5."""
    stages = {}
    for name, md5 in outs.items():
        stage = name.replace("__", "@")
        stages[stage] = {
            "cmd": f"python stages/{stage.split('@')[0]}.py",
            "deps": [{"path": "stages/x.py", "md5": "code"}],
            "outs": [{"path": f"out/{stage}", "md5": md5}],
        }
    return {"schema": "2.0", "stages": stages}


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("av.fusion.ravdess.test.n_pairs", "count"),
        ("av.fusion.ravdess.cv.folds", "count"),
        ("va.mean_baseline.test.rmse_valence", "baseline"),
        ("av.audio.cremad.test.chance_uar", "baseline"),
        ("av.audio.cremad.test.majority_accuracy", "baseline"),
        ("va.lora.test.ccc_mean", "regression_fp32"),
        ("va.frozen_mlp.test.rmse_arousal", "regression_fp32"),
        ("va.cached.test.ccc_clip_valence", "regression_bf16"),
        ("av.fusion.cremad.cv.face_accuracy_mean", "classification"),
        ("av.fusion.cremad.cv.accuracy_std", "spread"),
        ("av.fusion.cremad.test.f1_angry", "per_class"),
        ("av.fusion.cremad.test.congruence_f1_hard", "classification"),
        ("av.fusion.cremad.test.macro_f1", "classification"),
        ("av.fusion.cremad.cv.congruence_auc_mean", "classification"),
        ("av.fusion.ravdess.test.congruence_accuracy_raw", "classification"),
        ("av.fusion.ravdess.cv.congruence_f1_raw_mean", "classification"),
        ("av.fusion.ravdess.test.congruence_ece", "calibration"),
        ("av.fusion.ravdess.test.congruence_brier_raw", "calibration"),
        ("av.audio.ravdess.cv.emotion_ece_raw_mean", "calibration"),
        ("av.audio.ravdess.cv.emotion_brier_std", "spread"),
        ("av.fusion.cremad.test.congruence_threshold", "calibration"),
    ],
)
def test_each_metric_belongs_to_the_family_whose_tolerance_it_gets(name, family):
    assert metric_family(name) == family


def test_a_metric_without_a_family_is_refused_rather_than_given_a_default():
    with pytest.raises(ValueError, match="va.lora.test.best_epoch"):
        metric_family("va.lora.test.best_epoch")


def test_every_committed_metric_has_a_family_with_a_stated_tolerance():
    for name in ("va.json", "av.json"):
        tree = json.loads((REPO / "metrics" / name).read_text())
        stack = [("", tree)]
        while stack:
            prefix, node = stack.pop()
            for key, value in node.items():
                if isinstance(value, dict):
                    stack.append((f"{prefix}{key}.", value))
                else:
                    assert metric_family(f"{prefix}{key}") in TOLERANCES


def test_metrics_within_tolerance_pass_on_another_platform_and_are_named():
    committed = {"va": {"cached": {"test": {"ccc_mean": 0.80, "ccc_valence": 0.7}}}}
    produced = {"va": {"cached": {"test": {"ccc_mean": 0.81, "ccc_valence": 0.7}}}}
    failures, moved = compare_metrics(produced, committed, exact=False)
    assert failures == []
    assert len(moved) == 1 and "va.cached.test.ccc_mean" in moved[0] and "0.01" in moved[0]


def test_the_same_platform_allows_no_move_at_all():
    committed = {"va": {"lora": {"test": {"ccc_mean": 0.80}}}}
    produced = {"va": {"lora": {"test": {"ccc_mean": 0.8000001}}}}
    failures, _ = compare_metrics(produced, committed, exact=True)
    assert len(failures) == 1 and "va.lora.test.ccc_mean" in failures[0]


def test_a_move_beyond_the_family_tolerance_fails_and_says_by_how_much():
    tol = TOLERANCES["regression_bf16"]
    committed = {"va": {"cached": {"test": {"ccc_mean": 0.5}}}}
    produced = {"va": {"cached": {"test": {"ccc_mean": 0.5 + 2 * tol}}}}
    failures, moved = compare_metrics(produced, committed, exact=False)
    assert moved == [] and len(failures) == 1
    assert "va.cached.test.ccc_mean" in failures[0] and f"{2 * tol:.4g}" in failures[0]


def test_counts_must_match_exactly_and_nan_equals_nan():
    committed = {"av": {"f": {"r": {"test": {"n_pairs": 48, "congruence_auc": math.nan}}}}}
    produced = {"av": {"f": {"r": {"test": {"n_pairs": 47, "congruence_auc": math.nan}}}}}
    failures, _ = compare_metrics(produced, committed, exact=False)
    assert len(failures) == 1 and "n_pairs" in failures[0]


def test_a_metric_missing_on_either_side_fails():
    failures, _ = compare_metrics({"a": {"x": 1.0}}, {"a": {"y": 1.0}}, exact=False)
    assert sorted(failures) == ["a.x: only in produced", "a.y: only in committed"]


def test_exact_stage_outputs_must_match_on_any_platform():
    committed = lock(download__afewva="a", extract__clip_afewva="b")
    produced = lock(download__afewva="A", extract__clip_afewva="B")
    failures, moved = compare_locks(produced, committed, exact=False)
    assert len(failures) == 1 and "download@afewva: output out/download@afewva" in failures[0]
    assert len(moved) == 1 and "extract@clip_afewva" in moved[0]
    failures, moved = compare_locks(produced, committed, exact=True)
    assert len(failures) == 2 and moved == []


def test_a_data_dep_that_another_stage_writes_may_move_on_another_platform():
    committed = lock(extract__clip_ravdess="a", train_multimodal__fusion="b")
    produced = lock(extract__clip_ravdess="A", train_multimodal__fusion="B")
    for lk, md5 in ((committed, "a"), (produced, "A")):  # fusion reads what extract wrote
        dep = {"path": "out/extract@clip_ravdess", "md5": md5}
        lk["stages"]["train_multimodal@fusion"]["deps"].append(dep)
    failures, moved = compare_locks(produced, committed, exact=False)
    assert failures == [] and len(moved) == 2


def test_a_changed_source_dep_means_a_stale_committed_lock():
    committed, produced = lock(preprocess__ravdess="a"), lock(preprocess__ravdess="a")
    produced["stages"]["preprocess@ravdess"]["deps"][0]["md5"] = "edited"
    failures, _ = compare_locks(produced, committed, exact=False)
    assert len(failures) == 1 and "stages/x.py" in failures[0] and "stale" in failures[0]


def test_the_platform_record_names_what_selects_float_kernels():
    record = platform_record()
    assert {"cpu", "isa", "torch", "onednn", "mkl", "threads", "torch_cpu_capability"} <= set(
        record
    )
    assert platform_differences(record, record) == []
    other = {**record, "isa": ["avx2"]}
    assert platform_differences(record, other) == [f"isa: {record['isa']!r} vs ['avx2']"]


def test_the_committed_results_carry_the_record_of_their_platform():
    recorded = json.loads((REPO / PLATFORM_FILE).read_text())
    assert set(recorded) == set(platform_record())
