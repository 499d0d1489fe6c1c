"""End to end: `dvc repro` on a fresh copy of the project, then the experiment workflow."""

from __future__ import annotations

import pytest

from tests.pipeline_repo import REPO, PipelineRepo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> PipelineRepo:
    repo = PipelineRepo.copy_of_project(tmp_path_factory.mktemp("pipeline"))
    repo.run("dvc", "repro")
    return repo


def test_repro_builds_every_stage_output(repo: PipelineRepo):
    root = repo.root
    assert (root / "data/raw/afewva/manifest.csv").exists()
    assert (root / "data/processed/afewva/frames.csv").exists()
    assert (root / "data/processed/afewva/report.json").exists()


def test_status_is_clean_and_a_second_repro_runs_nothing(repo: PipelineRepo):
    assert "up to date" in repo.run("dvc", "status").stdout
    second = repo.run("dvc", "repro")
    assert "Running stage" not in second.stdout, second.stdout


def test_committed_lock_and_metrics_are_what_a_fresh_repro_produces(repo: PipelineRepo):
    """The committed dvc.lock and metrics/ are reproduced exactly on this machine kind."""
    assert (repo.root / "dvc.lock").read_text() == (REPO / "dvc.lock").read_text()
    for committed in sorted((REPO / "metrics").glob("*.json")):
        produced = repo.root / "metrics" / committed.name
        assert produced.read_text() == committed.read_text(), committed.name
