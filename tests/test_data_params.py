"""The data stages' params: params.yaml's sections build, and every key of them is required."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from affectpipe.config import ConfigError, from_section, load_params
from affectpipe.data.registry import DATASETS, dataset_module
from affectpipe.problems import InputProblem
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


def download_section(dataset: str, **changes: Any) -> Any:
    values = load_params(REPO / "params.yaml")["download"][dataset] | changes
    module = dataset_module(dataset)
    return module, from_section(module.DownloadConfig, values, f"download.{dataset}")


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize(
    ("path", "message"), [("", "is empty: name a folder"), ("~/x", "without .~.")]
)
def test_the_source_path_must_be_a_folder_dvc_can_depend_on(dataset, path, message):
    with pytest.raises(ConfigError, match=f"download.{dataset}.path.*{message}"):
        download_section(dataset, path=path)


@pytest.mark.parametrize(
    ("dataset", "source", "holds"),
    [
        ("afewva", "folder", "AFEW-VA clip folders"),
        ("afewva", "zips", "official AFEW-VA zips"),
        ("ravdess", "folder", "RAVDESS media"),
        ("cremad", "folder", "CREMA-D media"),
    ],
)
def test_the_default_source_folder_until_filled_is_an_error_naming_it_and_its_content(
    dataset, source, holds, tmp_path
):
    """The shipped path is a placeholder in the repository holding only its README."""
    default = load_params(REPO / "params.yaml")["download"][dataset]["path"]
    folder = REPO / default
    assert sorted(p.name for p in folder.iterdir() if p.name != ".gitignore") == ["README.md"]
    module, cfg = download_section(dataset, source=source, path=str(folder))
    with pytest.raises(InputProblem) as err:
        module.download(cfg, tmp_path / "raw")
    assert str(err.value).startswith(f"{folder}: no {holds}")
    assert f"put the dataset's release here, or set download.{dataset}.path" in str(err.value)
