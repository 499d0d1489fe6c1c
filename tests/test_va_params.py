"""The VA variants' trainable parameters on ViT-B/32 (`bench/va_params.py`): LoRA alone is 24,576,
the default frame feature is the pooled vector, and docs/va.md's table is the script's output."""

from __future__ import annotations

import importlib.util
import re

import pytest

from tests.pipeline_repo import REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("va_params", REPO / "bench" / "va_params.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def counts(bench):
    return bench.count_all()


def test_lora_adapters_alone_are_24576_on_vit_b32(bench, counts):
    arch = bench.architecture()
    assert (arch.lora_r, arch.lora_targets, arch.lora_blocks) == (8, ["q_proj", "v_proj"], [-1])
    assert counts[("lora", "cls")]["lora"] == counts[("lora", "tokens")]["lora"] == 24_576
    assert len(arch.lora_targets) * arch.lora_r * (768 + 768) == 24_576
    assert not any(parts["lora"] for (pipeline, _), parts in counts.items() if pipeline != "lora")


def test_the_default_frame_feature_is_the_pooled_vector_into_a_768_512_128_projector(bench, counts):
    assert bench.architecture().pool == "cls"
    pooled = 768 * 512 + 512 + 512 * 128 + 128
    for pipeline in ("lora", "frozen_mlp", "cached"):
        key = (pipeline, "cls" if pipeline != "cached" else None)
        assert counts[key]["projector"] == pooled
    tokens = 50 * 768  # 7 x 7 patches + CLS, every one 768 wide
    assert counts[("frozen_mlp", "tokens")]["projector"] == tokens * 512 + 512 + 512 * 128 + 128
    assert counts[("linear_probe", None)] == {**dict.fromkeys(bench.PARTS, 0), "regressor": 1538}


def test_docs_va_md_holds_the_scripts_table(bench, counts):
    text = (REPO / "docs" / "va.md").read_text()
    found = re.search(r"<!-- va-params:start -->\n(.*?)\n<!-- va-params:end -->", text, re.S)
    assert found, "docs/va.md: no va-params table"
    assert found.group(1) == bench.table(counts, bench.architecture().pool)
