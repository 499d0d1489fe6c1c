"""The Pipeline-A block cache: made on the sharded path, equal to a plain per-clip loop."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from affectpipe.compute import ComputeConfig
from affectpipe.features import backbones
from affectpipe.features.backbones import load_backbone
from affectpipe.features.block_cache import (
    BlockCacheConfig,
    block_rows,
    build_block_cache,
    cache_attrs,
)
from affectpipe.features.embed import prepare
from affectpipe.features.shards import extract_shard, merge_parts, part_path, plan_batches
from affectpipe.features.sources import afewva_frames_plan, source_settings
from affectpipe.features.store import FeatureWriter, open_features
from affectpipe.models.va import hidden_before
from affectpipe.problems import ProblemLog
from tests.test_features_extract import write_afewva

ROOT = Path(__file__).resolve().parents[1]
CPU = ComputeConfig(device="cpu", processes=1, launcher="accelerate", dataloader_workers=0)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path_factory.getbasetemp() / "cache"))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@torch.no_grad()
def per_clip_loop(folder: Path, out: Path, batch_size: int) -> None:
    """The cache written the plain way: clip by clip, batches within a clip, in one process."""
    backbone = load_backbone("clip", "tiny")
    plan = afewva_frames_plan(folder, ProblemLog("strict"))
    tokens = (backbone.model.config.image_size // backbone.model.config.patch_size) ** 2 + 1
    attrs = cache_attrs(backbone, 3, tokens, source_settings(folder))
    with FeatureWriter(out, attrs) as writer:
        for entry in plan.clips:
            rows, items = [], plan.items[entry.start : entry.stop]
            for i in range(0, len(items), batch_size):
                px = prepare(backbone, items[i : i + batch_size])["pixel_values"]
                rows.append(hidden_before(backbone.model, px, 3).float().flatten(1).numpy())
            writer.add(entry.clip_id, np.concatenate(rows), **entry.labels)


def test_cache_is_byte_identical_to_the_per_clip_loop(tmp_path):
    folder = write_afewva(tmp_path / "afewva")
    ours, plain = tmp_path / "ours.h5", tmp_path / "plain.h5"
    cfg = BlockCacheConfig(batch_size=2)
    assert build_block_cache(folder, ours, "tiny", [-1], cfg, CPU, ProblemLog("strict")) == 6
    per_clip_loop(folder, plain, batch_size=2)
    assert sha(ours) == sha(plain)
    with open_features(ours, {"content": "clip_hidden_before_block", "block": 3}) as r:
        assert r.clip_ids == ["001", "002"] and r.dim == 17 * 64
        np.testing.assert_array_equal(r.labels("001")["frame"], [0, 1, 2])


def test_two_shards_merge_to_the_same_bytes_as_one(tmp_path):
    folder = write_afewva(tmp_path / "afewva")
    b = load_backbone("clip", "tiny")
    plan = afewva_frames_plan(folder, ProblemLog("strict"))
    batches = plan_batches(plan, 2, False, False, within_clips=True)
    rows, attrs = block_rows(b, 3, 17), cache_attrs(b, 3, 17)
    digests = []
    for world in (1, 2):
        out = tmp_path / f"w{world}.h5"
        parts = [part_path(out, r, world) for r in range(world)]
        for rank, part in enumerate(parts):
            extract_shard(b, plan, batches, part, rows, rank, world)
        merge_parts(parts, plan, out, attrs, ProblemLog("strict"))
        digests.append(sha(out))
    assert digests[0] == digests[1]


def load_stage():
    spec = importlib.util.spec_from_file_location("va_cache_stage", ROOT / "stages/va_cache.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    return stage


def test_stage_reads_its_section_and_names_a_missing_key(tmp_path):
    folder = write_afewva(tmp_path / "afewva")
    params = tmp_path / "params.yaml"
    common = (
        "compute: {device: cpu, processes: 1, launcher: accelerate, dataloader_workers: 0}\n"
        "extract: {bad_input: skip, clip: {spec: tiny}}\n"
        "pretrain: {model: {lora_blocks: [-1]}}\n"
    )
    args = ["--in-dir", str(folder), "--out", str(tmp_path / "c.h5"), "--params", str(params)]
    params.write_text(common + "va_cache: {batch_size: 4}\n")
    result = CliRunner().invoke(load_stage().app, args)
    assert result.exit_code == 0, result.output
    assert "va_cache: 6 frames" in result.output
    params.write_text(common + "va_cache: {}\n")
    result = CliRunner().invoke(load_stage().app, args)
    assert result.exit_code == 1 and "missing key 'va_cache.batch_size'" in result.output
