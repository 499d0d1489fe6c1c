"""params.yaml is the one home of every default: deleting any of its keys makes the stage that
reads it stop with one line naming that key, never fall back to a value written in code."""

from __future__ import annotations

import copy
import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.pipeline_repo import REPO

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
# keys only dvc.yaml reads (stage lists), checked by DVC itself when it parses the pipeline
DVC_ONLY = {"extract.sets"}


def leaf_keys(node: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        keys += leaf_keys(value, f"{dotted}.") if isinstance(value, dict) else [dotted]
    return keys


def stage_args(key: str, tmp: Path) -> tuple[str, list[str]]:
    """The stage script that reads `key`, with arguments naming (absent) paths under `tmp`."""
    top, _, rest = key.partition(".")
    sub = rest.split(".")[0]
    p = lambda name: str(tmp / name)  # noqa: E731
    if top in ("download", "preprocess"):
        if top == "download":
            return "download", [sub, "--out-dir", p("raw")]
        return "preprocess", [sub, "--raw-dir", p("raw"), "--out-dir", p("out")]
    if top in ("extract", "compute"):
        backbone = sub if sub in ("clip", "videomae", "wav2vec2", "egemaps", "compare") else "clip"
        return "extract", [backbone, "afewva", "--in-dir", p("in"), "--out-dir", p("out")]
    if top == "va_cache":
        return "va_cache", ["--in-dir", p("in"), "--out", p("out.h5")]
    if top in ("pretrain", "finetune"):
        args = ["cached", "--inputs", p("in.h5"), "--out", p("out"), "--live", p("live")]
        return top, args + (["--init", p("init")] if top == "finetune" else [])
    if top in ("train_multimodal", "seed"):
        model = sub if sub in ("audio", "video") else "fusion"  # a model's own sub-section
        paths = ["--processed-dir", p("in"), "--features-dir", p("f"), "--ckpt-dir", p("c")]
        return "train_multimodal", [model, "ravdess", *paths, "--live-dir", p("live")]
    if top == "evaluate":
        return "evaluate", ["--va", "cached:a:b", "--av", "fusion:ravdess:c",
                            "--features-dir", p("f"), "--processed-dir", p("in"),
                            "--metrics-dir", p("m"), "--plots-dir", p("p")]  # fmt: skip
    raise AssertionError(f"no stage known to read '{key}': add it here")


@cache
def stage_app(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def without(params: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(params)
    *parents, last = key.split(".")
    node = out
    for part in parents:
        node = node[part]
    del node[last]
    return out


KEYS = [k for k in leaf_keys(PARAMS) if not any(k.startswith(f"{d}.") for d in DVC_ONLY)]


def test_every_section_of_params_yaml_is_read_by_a_stage(tmp_path):
    for key in KEYS:
        stage_args(key, tmp_path)  # raises for a key no stage is known to read


@pytest.mark.parametrize("key", KEYS)
def test_deleting_a_key_stops_its_stage_with_one_line_naming_it(key, tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(without(PARAMS, key), sort_keys=False))
    name, args = stage_args(key, tmp_path)
    result = CliRunner().invoke(stage_app(name), [*args, "--params", str(params_file)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert key in lines[0] or f"'{key.rsplit('.', 1)[1]}' in {key.rsplit('.', 1)[0]}" in lines[0]
