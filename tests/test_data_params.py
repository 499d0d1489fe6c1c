"""The data stages' params: params.yaml's sections build, and every key of them is required."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from affectpipe.config import ConfigError, from_section, load_params
from affectpipe.data.image_size import IMAGE_BACKBONE, preprocess_values
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
    params = load_params(REPO / "params.yaml")
    # preprocess: the section as the stage builds it, an `auto` image side resolved
    values = preprocess_values(params, dataset) if stage == "preprocess" else params[stage][dataset]
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


@pytest.mark.parametrize("dataset", DATASETS)
def test_an_auto_image_side_is_the_input_size_of_the_backbones_processor(dataset):
    """`auto` (the default) resolves from `extract.<backbone>.spec`'s processor config alone, so
    the config and the report's settings hold an int; a number stays as it is."""
    params = load_params(REPO / "params.yaml")
    key, backbone = IMAGE_BACKBONE[dataset]
    assert params["preprocess"][dataset][key] == "auto"
    assert params["extract"][backbone]["spec"] == "tiny"
    cfg = from_section(dataset_module(dataset).PreprocessConfig, preprocess_values(params, dataset),
                       f"preprocess.{dataset}")  # fmt: skip
    assert getattr(cfg, key) == 64  # the tiny presets' image_size
    params["preprocess"][dataset][key] = 48
    assert preprocess_values(params, dataset)[key] == 48


def test_an_auto_image_side_follows_a_real_backbone_and_a_typo_is_named(tmp_path):
    """A local folder holding ViT-B/32's processor (no weights): 224 px crops."""
    from affectpipe.features.backbones import default_processor, real_size_config

    default_processor("clip", real_size_config("clip")).save_pretrained(tmp_path)
    params = load_params(REPO / "params.yaml")
    params["extract"]["clip"]["spec"] = str(tmp_path)
    assert preprocess_values(params, "afewva")["crop_size"] == 224
    params["preprocess"]["afewva"]["crop_size"] = "atuo"
    with pytest.raises(ConfigError, match=r"'preprocess.afewva.crop_size': .* or 'auto'.*'atuo'"):
        preprocess_values(params, "afewva")
    params["preprocess"]["afewva"]["crop_size"] = "auto"
    del params["extract"]["clip"]["spec"]
    with pytest.raises(ConfigError, match=r"missing section 'extract.clip.spec'"):
        preprocess_values(params, "afewva")


def test_dvc_yaml_names_the_backbone_that_sizes_each_dataset():
    """preprocess@<dataset> depends on `extract.<backbone>.spec`, the one its `auto` reads."""
    import yaml

    variables = yaml.safe_load((REPO / "dvc.yaml").read_text())["vars"]
    datasets = next(v["datasets"] for v in variables if "datasets" in v)
    assert {name: entry["backbone"] for name, entry in datasets.items()} == {
        name: backbone for name, (_, backbone) in IMAGE_BACKBONE.items()
    }


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
