"""Which stages an edit makes stale, by DVC's own change checks: a params key, a file in a local
source folder. A copy of dvc.yaml and params.yaml is the DVC project; each dependency is
recorded as it is now (what `dvc.lock` holds after a repro), then the edit is made and DVC
asked which stages it changed. Cheap: no stage runs, and no other file is needed."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo

from affectpipe.config import ConfigError
from affectpipe.train.multimodal import stage_config
from tests.pipeline_repo import REPO
from tests.test_params_complete import leaf_keys, without

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def project(root: Path, params: dict[str, Any]) -> Path:
    """A DVC project at `root` with this repository's pipeline and `params`."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    Repo.init(str(root), no_scm=True).close()
    return root


def recorded(repo: Repo, params: bool) -> dict[str, list]:
    """Each stage's params dependencies (`params`) or those of its path dependencies that this
    copy holds, recorded as they are now."""
    deps: dict[str, list] = {}
    for stage in repo.index.stages:
        if params:
            mine = [d for d in stage.deps if isinstance(d, ParamsDependency)]
            for dep in mine:
                dep.fill_values(dep.read_params())
        else:
            mine = [d for d in stage.deps if not isinstance(d, ParamsDependency) and d.exists]
            for dep in mine:
                dep.save()
        deps[stage.name] = mine
    return deps


def stale(deps: dict[str, list]) -> set[str]:
    """The stages whose recorded dependencies DVC now finds changed."""
    return {name for name, mine in deps.items() if any(d.workspace_status() for d in mine)}


def get_key(params: dict[str, Any], dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        node = node[part]
    return node


def set_key(params: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(params)
    *parents, leaf = dotted.split(".")
    node = out
    for part in parents:
        node = node[part]
    node[leaf] = value
    return out


def another(value: Any) -> Any:
    """A different value of the same kind (DVC compares values)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    return f"{value}-other"


def models_reading(key: str) -> set[str]:
    """The models whose stage stops when `key` is deleted: those that read it (every key is
    required), found from the code, not from dvc.yaml."""
    section = without(PARAMS, key)["train_multimodal"]
    reading = set()
    for model in ("fusion", "audio", "video"):
        try:
            stage_config(section, model)
        except ConfigError:
            reading.add(model)
    return reading


@pytest.fixture(scope="module")
def params_deps(tmp_path_factory):
    root = project(tmp_path_factory.mktemp("dvc") / "repo", PARAMS)
    with Repo(str(root)) as repo:
        yield root, recorded(repo, params=True)


TRAIN_KEYS = [k for k in leaf_keys(PARAMS) if k.startswith("train_multimodal.")]


# dvc.yaml's voice stores the audio model also trains on (train_multimodal_audio@<store>-<ds>)
AUDIO_STORES = next(v["audio_stores"] for v in yaml.safe_load((REPO / "dvc.yaml").read_text())[
    "vars"] if "audio_stores" in v)  # fmt: skip


@pytest.mark.parametrize("key", TRAIN_KEYS)
def test_a_train_multimodal_key_makes_stale_exactly_the_models_that_read_it(params_deps, key):
    """The audio models on other voice stores read what the audio model reads, but the voice
    store: theirs is dvc.yaml's, so `voice_features` leaves them alone."""
    root, deps = params_deps
    value = another(get_key(PARAMS, key))
    (root / "params.yaml").write_text(yaml.safe_dump(set_key(PARAMS, key, value)))
    try:
        changed = stale({k: v for k, v in deps.items() if k.startswith("train_multimodal")})
    finally:
        (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    datasets = ("ravdess", "cremad")
    readers = models_reading(key)
    expected = {f"train_multimodal@{m}-{d}" for m in readers for d in datasets}
    if "audio" in readers and key != "train_multimodal.voice_features":
        expected |= {f"train_multimodal_audio@{s}-{d}" for s in AUDIO_STORES for d in datasets}
    assert expected and changed == expected


def test_a_fusion_knob_leaves_the_baselines_up_to_date(params_deps):
    root, deps = params_deps
    edited = set_key(PARAMS, "train_multimodal.fusion.congruence", "mlp")
    (root / "params.yaml").write_text(yaml.safe_dump(edited))
    try:
        changed = stale(deps)
    finally:
        (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    assert changed == {"train_multimodal@fusion-ravdess", "train_multimodal@fusion-cremad"}


def test_an_egemaps_setting_makes_stale_its_stores_and_the_audio_models_on_them(tmp_path):
    """`extract.egemaps` is the eGeMAPS stores' own section, and the audio models on them
    read it (they refuse a store made otherwise); the wav2vec2 stores and the models on them
    stay up to date."""
    root = project(tmp_path / "repo", PARAMS)
    with Repo(str(root)) as repo:
        deps = recorded(repo, params=True)
    edited = set_key(PARAMS, "extract.egemaps.feature_set", "eGeMAPSv01b")
    (root / "params.yaml").write_text(yaml.safe_dump(edited))
    assert stale(deps) == {
        "extract@egemaps_ravdess",
        "extract@egemaps_cremad",
        "train_multimodal_audio@egemaps-ravdess",
        "train_multimodal_audio@egemaps-cremad",
    }


def test_an_edit_in_a_source_folder_makes_its_download_stale(tmp_path):
    """`download.<ds>.path` is a dep: in the repository (the default) or outside it."""
    release = tmp_path / "release"  # outside the project: DVC hashes it all the same
    (release / "Actor_01").mkdir(parents=True)
    (release / "Actor_01" / "03-01-05-02-01-01-01.wav").write_bytes(b"one")
    params = set_key(PARAMS, "download.ravdess.path", str(release))
    root = project(tmp_path / "repo", params)
    shutil.copytree(REPO / "data/sources", root / "data/sources")
    with Repo(str(root)) as repo:
        deps = recorded(repo, params=False)
        assert stale(deps) == set()
        (release / "Actor_01" / "03-01-05-02-01-01-01.wav").write_bytes(b"two")
        assert stale(deps) == {"download@ravdess"}
        placeholder = root / get_key(PARAMS, "download.afewva.path")
        (placeholder / "001").mkdir()
        (placeholder / "001" / "001.json").write_text("{}")
        assert stale(deps) == {"download@ravdess", "download@afewva"}


def test_download_runs_for_exactly_the_datasets_the_pipeline_preprocesses():
    """`download` iterates over params.yaml's section (so each path can be a dep), the other
    stages over dvc.yaml's `datasets`: the two lists must agree."""
    with Repo(str(REPO)) as repo:
        names = [stage.name for stage in repo.index.stages]
    downloads = {n.removeprefix("download@") for n in names if n.startswith("download@")}
    preprocessed = {n.removeprefix("preprocess@") for n in names if n.startswith("preprocess@")}
    assert downloads == preprocessed == set(PARAMS["download"])


def _stale_after(root: Path, deps: dict[str, list], key: str) -> set[str]:
    edited = set_key(PARAMS, key, another(get_key(PARAMS, key)))
    (root / "params.yaml").write_text(yaml.safe_dump(edited))
    try:
        return stale(deps)
    finally:
        (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))


def _va_stages(deps: dict[str, list], prefix: str) -> set[str]:
    return {name for name in deps if name.startswith(f"{prefix}@")}


def test_a_finetune_knob_reruns_both_stage_2s_and_no_stage_1(params_deps):
    root, deps = params_deps
    changed = _stale_after(root, deps, "finetune.lr")
    assert changed == _va_stages(deps, "finetune") | _va_stages(deps, "finetune_scratch")
    assert len(_va_stages(deps, "finetune_scratch")) == len(_va_stages(deps, "pretrain")) > 0


def test_a_stage_1_loss_knob_leaves_stage_2_from_scratch_up_to_date(params_deps):
    """Stage 2 from stage 1 reruns through its stage-1 checkpoint (a path dep), not params."""
    root, deps = params_deps
    assert _stale_after(root, deps, "pretrain.contrastive.tau") == _va_stages(deps, "pretrain")
    assert _stale_after(root, deps, "pretrain.model.reg_hidden") == (
        _va_stages(deps, "pretrain") | _va_stages(deps, "finetune_scratch")
    )


@pytest.mark.parametrize(
    ("backbone", "datasets"), [("clip", {"afewva"}), ("videomae", {"ravdess", "cremad"})]
)
def test_a_backbone_spec_makes_stale_the_preprocessing_whose_auto_size_it_gives(
    params_deps, backbone, datasets
):
    """`preprocess.<ds>.crop_size`/`frame_size: auto` reads the processor of the backbone that
    embeds the dataset's images: its spec reruns that preprocessing, and no other."""
    root, deps = params_deps
    changed = _stale_after(root, deps, f"extract.{backbone}.spec")
    preprocessed = {n.removeprefix("preprocess@") for n in changed if n.startswith("preprocess@")}
    assert preprocessed == datasets
