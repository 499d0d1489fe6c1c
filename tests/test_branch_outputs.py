"""Switching git branches gets that branch's outputs back without running anything: `dvc checkout`
from the cache, `dvc repro` from the run cache. On a copy of the project, with the two cheapest
stages (AFEW-VA's download and preprocessing, shrunk to a few actors)."""

from __future__ import annotations

import hashlib
import json
import shutil

import yaml

from tests.pipeline_repo import PipelineRepo, ran_stages, set_param

STAGES = ("download@afewva", "preprocess@afewva")
SMALL = {  # seconds per stage, not tens of seconds
    "download.afewva.synthetic.actors": 6,
    "download.afewva.synthetic.frames_per_clip": 8,
}
OUTS = {"download@afewva": "data/raw/afewva", "preprocess@afewva": "data/processed/afewva"}


def files_md5(repo: PipelineRepo, out: str) -> dict[str, str]:
    """md5 of every file under an output folder, by path relative to it."""
    root = repo.root / out
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def locked_md5(repo: PipelineRepo, stage: str, out: str) -> dict[str, str]:
    """The files dvc.lock records for an output folder: its `.dir` listing in the cache."""
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())
    (entry,) = [o for o in lock["stages"][stage]["outs"] if o["path"] == out]
    digest = entry["md5"]
    listing = repo.root / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    return {f["relpath"]: f["md5"] for f in json.loads(listing.read_text())}


def assert_workspace_is_the_branch(repo: PipelineRepo, status: bool = True) -> None:
    """Every output file is the one the checked-out dvc.lock records (and `dvc status` agrees)."""
    for stage, out in OUTS.items():
        assert files_md5(repo, out) == locked_md5(repo, stage, out), out
    if status:
        assert "up to date" in repo.run("dvc", "status", "--with-deps", STAGES[-1]).stdout


def test_checkout_and_run_cache_restore_each_branch_outputs_without_running(tmp_path):
    repo = PipelineRepo.copy_of_project(tmp_path / "repo")
    for key, value in SMALL.items():
        set_param(repo, key, value)
    repo.run("dvc", "repro", STAGES[-1])
    repo.commit("main: AFEW-VA outputs")
    main_frames = (repo.root / "data/processed/afewva/frames.csv").read_bytes()

    repo.run("git", "checkout", "-q", "-b", "wider-crops")
    set_param(repo, "preprocess.afewva.margin", 0.4)
    assert ran_stages(repo.run("dvc", "repro", STAGES[-1]).stdout) == ["preprocess@afewva"]
    repo.commit("wider face crops")
    branch_frames = (repo.root / "data/processed/afewva/frames.csv").read_bytes()
    assert branch_frames != main_frames  # the boxes moved: the branches' outputs differ

    for branch, frames in (("main", main_frames), ("wider-crops", branch_frames)):
        repo.run("git", "checkout", "-q", branch)
        repo.run("dvc", "checkout", *STAGES)  # named: the copy's cache holds only these
        assert (repo.root / "data/processed/afewva/frames.csv").read_bytes() == frames
        assert_workspace_is_the_branch(repo)

        for out in OUTS.values():
            shutil.rmtree(repo.root / out)
        out = repo.run("dvc", "repro", STAGES[-1]).stdout
        assert ran_stages(out) == [], out
        for stage in STAGES:
            assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in out, out
        assert (repo.root / "data/processed/afewva/frames.csv").read_bytes() == frames
        assert_workspace_is_the_branch(repo, status=False)
