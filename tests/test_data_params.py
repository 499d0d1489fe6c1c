"""The data stages' params: params.yaml's sections build, and every key of them is required."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from affectpipe.config import ConfigError, from_section, load_params
from affectpipe.data.registry import DATASETS, dataset_module
from tests.pipeline_repo import REPO

SECTIONS = [
    (stage, dataset, config)
    for dataset in DATASETS
    for stage, config in (("download", "DownloadConfig"), ("preprocess", "PreprocessConfig"))
]


def leaf_keys(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in values.items():
        path = (*prefix, key)
        out += leaf_keys(value, path) if isinstance(value, dict) else [path]
    return out


@pytest.mark.parametrize(("stage", "dataset", "config"), SECTIONS)
def test_every_key_of_the_section_is_required(stage, dataset, config):
    cls = getattr(dataset_module(dataset), config)
    values = load_params(REPO / "params.yaml")[stage][dataset]
    name = f"{stage}.{dataset}"
    from_section(cls, values, name)  # the section as it is builds
    for path in leaf_keys(values):
        reduced = copy.deepcopy(values)
        node = reduced
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        dotted = ".".join((name, *path))
        with pytest.raises(ConfigError, match=f"missing key '{dotted}'"):
            from_section(cls, reduced, name)
