"""End to end: `dvc repro` on a fresh copy of the project, then the experiment workflow.

One full run of the default pipeline is shared by the tests of this module (a module fixture);
the later tests change params on top of it, in the order a user would.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from affectpipe.data.afewva import FPS as AFEWVA_FPS
from affectpipe.data.image_size import preprocess_values
from affectpipe.reproducibility import compare, platform_record
from tests.pipeline_repo import REPO, PipelineRepo, ran_stages, set_param
from tests.test_dvc_deps import import_closure, scripts_of, stages

pytestmark = pytest.mark.slow
VARIANTS = ("lora", "frozen_mlp", "cached", "linear_probe")  # dvc.yaml va_variants


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> PipelineRepo:
    repo = PipelineRepo.copy_of_project(tmp_path_factory.mktemp("pipeline"))
    repo.run("dvc", "repro")
    repo.commit("pipeline outputs")
    return repo


def test_repro_builds_every_stage_output(repo: PipelineRepo):
    for path in (
        "data/raw/afewva/manifest.csv",
        "data/processed/afewva/frames.csv",
        "data/processed/ravdess/pairs.csv",
        "data/processed/cremad/pairs.csv",
        "data/features/clip_afewva.h5",
        "data/features/videomae_ravdess.h5",
        "data/features/wav2vec2_cremad.h5",
        "models/finetune/lora/fold0",
        "models/finetune/cached/fold4",
        "models/finetune_scratch/frozen_mlp/fold4",
        "models/multimodal/fusion_ravdess",
        "plots/va/cached_frames.csv",
        "plots/av/fusion_cremad_confusion.csv",
        "plots/figures/va_space_cached.png",
        "plots/figures/va_embeddings_pca_cached_pretrain.png",
        "plots/figures/va_clip_embeddings_pca_cached_finetune.png",
        "models/finetune/linear_probe",
    ):
        assert (repo.root / path).exists(), path
    va = json.loads((repo.root / "metrics/va.json").read_text())["va"]
    assert set(va) == {"lora", "frozen_mlp", "cached", "linear_probe", "mean_baseline", "n_folds"}
    folds = yaml.safe_load((repo.root / "params.yaml").read_text())["preprocess"]["afewva"]
    assert va["n_folds"] == folds["split"]["folds"]
    for variant in VARIANTS:  # every fold, from stage 1 and from scratch
        for init in ("pretrained", "scratch"):
            assert va[variant][init]["folds"] == va["n_folds"], (variant, init)
            assert {"ccc_mean_mean", "ccc_mean_std", "ccc_clip_valence_mean"} <= set(
                va[variant][init]
            )
    av = json.loads((repo.root / "metrics/av.json").read_text())["av"]
    assert {(m, d) for m in av for d in av[m]} == {
        (m, d) for m in ("fusion", "audio", "video", "audio_egemaps") for d in ("ravdess", "cremad")
    }


def test_checkpoints_record_the_preprocessing_their_data_had(repo: PipelineRepo):
    from affectpipe.inference import AVEngine, VAEngine, VASettings
    from affectpipe.models.checkpoint import load_checkpoint

    everything = yaml.safe_load((repo.root / "params.yaml").read_text())
    params = {name: preprocess_values(everything, name) for name in ("afewva", "cremad")}
    inputs = load_checkpoint(repo.root / "models/finetune/lora/fold0")["provenance"]["inputs"]
    assert json.loads(inputs["source_settings"]) == {
        **{k: params["afewva"][k] for k in ("crop_size", "margin")},
        "fps": AFEWVA_FPS,
    }
    cpu = torch.device("cpu")
    va = VAEngine(
        repo.root / "models/finetune/cached/fold0", cpu, VASettings(crop_size=7, margin=0.5)
    )
    assert va.settings.crop_size == params["afewva"]["crop_size"]  # the record, not the default
    av = AVEngine(repo.root / "models/multimodal/fusion_cremad", cpu)
    assert av.settings.frame_size == params["cremad"]["frame_size"]
    assert av.settings.n_frames == params["cremad"]["n_frames"]


def test_status_is_clean_and_a_second_repro_runs_nothing(repo: PipelineRepo):
    assert "up to date" in repo.run("dvc", "status").stdout
    assert ran_stages(repo.run("dvc", "repro").stdout) == []


def test_committed_lock_and_metrics_are_what_a_fresh_repro_produces(repo: PipelineRepo):
    """Byte for byte on the platform that made them; on another, download and preprocess byte
    for byte and every metric within its family's tolerance (docs/reproducibility.md)."""
    result = compare(repo.root, REPO, platform_record())
    assert result.ok, result.summary()


def test_on_another_platform_the_exact_stages_still_match_and_metrics_stay_in_tolerance(
    repo: PipelineRepo,
):
    """The cross-platform path, exercised here by faking the record of the committed platform."""
    other = {**platform_record(), "cpu": "another CPU"}
    result = compare(repo.root, REPO, other)
    assert not result.same_platform and result.ok, result.summary()


def test_the_same_commands_twice_give_the_same_bytes_features_and_models_included(
    repo: PipelineRepo,
):
    sub_dag = ["preprocess@afewva", "extract@clip_afewva", "pretrain@cached", "finetune@cached"]
    before = (repo.root / "dvc.lock").read_text()
    ran = ran_stages(repo.run("dvc", "repro", "--force", "--single-item", *sub_dag).stdout)
    assert ran == sub_dag
    assert (repo.root / "dvc.lock").read_text() == before


def test_editing_a_module_reruns_exactly_the_stages_that_import_it(repo: PipelineRepo):
    labels = repo.root / "src/affectpipe/data/labels.py"
    labels_module = REPO / "src/affectpipe/data/labels.py"
    original = labels.read_text()
    labels.write_text(original + "\n# edited\n")
    try:
        stale = set(json.loads(repo.run("dvc", "status", "--json").stdout))
    finally:
        labels.write_text(original)
    # the stages whose script imports it, directly or not (computed from the code, not dvc.yaml)
    expected = {
        name for name, cmd, _ in stages() if labels_module in import_closure(scripts_of(cmd))
    }
    assert "evaluate" in expected and "extract@clip_afewva" not in expected
    assert stale == expected


def test_machine_knobs_rerun_nothing(repo: PipelineRepo):
    for key, value in (("processes", 2), ("launcher", "torchrun"), ("device", "cpu")):
        set_param(repo, f"compute.{key}", value)
    try:
        assert "up to date" in repo.run("dvc", "status").stdout
    finally:
        repo.run("git", "checkout", "--", "params.yaml")


def test_readme_results_block_matches_the_committed_metrics():
    from affectpipe.results import START, render

    expected = f"{START}\n{render(REPO / 'metrics')}\n"
    assert expected in (REPO / "README.md").read_text(), "run: python -m affectpipe.results"


def test_changing_only_an_evaluate_param_reruns_only_evaluate(repo: PipelineRepo):
    set_param(repo, "evaluate.trace_clips", 2)
    status = json.loads(repo.run("dvc", "status", "--json").stdout)
    assert list(status) == ["evaluate"], status
    assert ran_stages(repo.run("dvc", "repro").stdout) == ["evaluate"]
    repo.run("git", "checkout", "--", "params.yaml")
    assert ran_stages(repo.run("dvc", "repro").stdout) == ["evaluate"]


def test_exp_run_with_another_finetune_lr_gives_other_metrics(repo: PipelineRepo):
    lr = yaml.safe_load((repo.root / "params.yaml").read_text())["finetune"]["lr"] / 4
    run = repo.run("dvc", "exp", "run", "--temp", "-S", f"finetune.lr={lr}", "-n", "slow-lr")
    stages = set(ran_stages(run.stdout))
    stage_2 = {f"{s}@{v}" for s in ("finetune", "finetune_scratch") for v in VARIANTS}
    assert stages == stage_2 | {"evaluate"}, stages  # stage 1 is up to date
    shown = repo.run("dvc", "exp", "show", "--csv", "--no-fetch").stdout
    assert "slow-lr" in shown
    diff = json.loads(repo.run("dvc", "exp", "diff", "HEAD", "slow-lr", "--json").stdout)
    changed = {name for name in diff["metrics"].get("metrics/va.json", {})}
    assert {"va.cached.test.ccc_mean", "va.cached.pretrained.ccc_mean_mean"} <= changed, diff


def test_metrics_and_params_diff_across_branches(repo: PipelineRepo):
    repo.run("git", "checkout", "-q", "-b", "lower-lr")
    lr = yaml.safe_load((repo.root / "params.yaml").read_text())["finetune"]["lr"] / 4
    set_param(repo, "finetune.lr", lr)
    repo.run("dvc", "repro")
    repo.commit("finetune with a lower learning rate")
    metrics = json.loads(repo.run("dvc", "metrics", "diff", "main", "lower-lr", "--json").stdout)
    assert "va.cached.test.ccc_mean" in metrics.get("metrics/va.json", {}), metrics
    params = json.loads(repo.run("dvc", "params", "diff", "main", "lower-lr", "--json").stdout)
    assert params["params.yaml"]["finetune.lr"]["new"] == lr, params
    repo.run("git", "checkout", "-q", "main")
    repo.run("dvc", "checkout")
    assert "up to date" in repo.run("dvc", "status").stdout
