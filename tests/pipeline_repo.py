"""A throwaway git + DVC copy of this repository, for end-to-end tests of the pipeline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def project_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files: what a commit of this tree would hold."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [f for f in out.splitlines() if (REPO / f).is_file()]


class PipelineRepo:
    """Runs git and dvc in a copy of the project, with the venv's `python` first on PATH."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
        }

    @classmethod
    def copy_of_project(cls, dest: Path) -> PipelineRepo:
        for rel in project_files():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target)
        repo = cls(dest)
        repo.run("git", "init", "-q", "-b", "main")
        repo.commit("project as under test")  # DVC needs a commit before repro and exp
        return repo

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        exe = str(VENV_BIN / "dvc") if args[0] == "dvc" else args[0]
        proc = subprocess.run(
            [exe, *args[1:]], cwd=self.root, env=self.env, capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A", ".")  # only a test copy: outputs are DVC-ignored here
        self.run("git", "commit", "-q", "--allow-empty", "-m", message)


def ran_stages(output: str) -> list[str]:
    """The stages a `dvc repro` ran, from its output."""
    return re.findall(r"Running stage '([^']+)'", output)


def set_param(repo: PipelineRepo, dotted: str, value: object) -> None:
    """Set one params.yaml key (DVC compares values, so the layout may change)."""
    path = repo.root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    *parents, leaf = dotted.split(".")
    node = params
    for key in parents:
        node = node[key]
    assert leaf in node, dotted
    node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
