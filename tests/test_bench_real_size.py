"""The real-size run (`bench/real_size.py`, `make repro-real-size`): the whole DAG with ViT-B/32,
VideoMAE-base and wav2vec2-base on the releases' resolutions, every stage timed, and the
backbones' own input and output sizes reaching the stores because the specs alone changed."""

from __future__ import annotations

import json
import math

import h5py
import pytest

from tests.test_bench_fullrun import load

pytestmark = pytest.mark.slow


def store_attrs(path) -> dict:
    with h5py.File(path, "r") as f:
        return dict(f.attrs)


def processor_crop(attrs: dict) -> int:
    return json.loads(attrs["preprocessing"])["processor"]["crop_size"]["height"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    bench = load("real_size")
    work = tmp_path_factory.mktemp("real-size")
    return bench, work / "repo", bench.real_size_run(work, scale=1)


def test_every_stage_of_the_dag_runs_timed_in_dag_order(run):
    bench, root, result = run
    assert [row["stage"] for row in result["stages"]] == bench.stage_order(root)
    assert all(row["wall_s"] > 0 and row["peak_rss_mib"] > 0 for row in result["stages"])
    assert result["inputs"] == {
        "afewva_frames": 5 * 32,  # 5 actors, one 32-frame clip each
        "ravdess_videos": 3 * 8 * 2,  # 3 actors x 8 performances (statement 1), 01 + 02
        "ravdess_wavs": 3 * 8,
        "cremad_clips": result["inputs"]["cremad_clips"],
    }
    assert result["inputs"]["cremad_clips"] > 0


def test_real_backbones_get_their_own_input_and_output_sizes(run):
    _, root, _ = run
    features = root / "data" / "features"
    clip = store_attrs(features / "clip_afewva.h5")
    assert (processor_crop(clip), clip["dim"]) == (224, 768)  # ViT-B/32: 224 px, width 768
    for dataset in ("ravdess", "cremad"):
        videomae = store_attrs(features / f"videomae_{dataset}.h5")
        assert (processor_crop(videomae), videomae["dim"]) == (224, 768)
        wav2vec2 = store_attrs(features / f"wav2vec2_{dataset}.h5")
        assert (wav2vec2["layers"], wav2vec2["dim"]) == (13, 768)  # 12 layers + the CNN's


def test_ravdess_video_only_files_are_covered_not_decoded_again(run):
    _, root, _ = run
    report = json.loads((root / "data" / "processed" / "ravdess" / "report.json").read_text())
    files = report["inputs"]["ignored_files"]
    covered = [f for f in files if "same video stream as 01-" in f["reason"]]
    assert len(covered) == 3 * 8  # every 02 is its 01's stream
    assert report["clips"] == 3 * 8  # one clip per recording: 01 video with its 03 wav


def test_metrics_of_both_halves_are_written(run):
    _, root, _ = run
    va = json.loads((root / "metrics" / "va.json").read_text())["va"]
    av = json.loads((root / "metrics" / "av.json").read_text())["av"]
    for variant in ("lora", "frozen_mlp", "cached", "linear_probe"):
        for init in ("pretrained", "scratch"):
            assert math.isfinite(va[variant][init]["ccc_mean_mean"])
    assert math.isfinite(av["fusion"]["ravdess"]["cv"]["uar_mean"])
    assert math.isfinite(av["audio"]["cremad"]["cv"]["uar_mean"])
