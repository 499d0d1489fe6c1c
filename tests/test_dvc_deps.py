"""dvc.yaml deps cover every module a stage runs, so a code change reruns the stages it affects.

Each stage's scripts are read from its command (`python stages/x.py`, `python -m affectpipe.y`);
their import closure inside `affectpipe` is found statically, imports inside functions included,
and every module of it must be a dep, as a file or under a folder dep.
"""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
from dvc.repo import Repo

from tests.pipeline_repo import REPO

SRC = REPO / "src"
PACKAGE = "affectpipe"


def module_file(name: str) -> Path | None:
    """The file of module `affectpipe.x.y`, or None when it is not a module of the package."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Modules of the package that `path` imports, anywhere in the file.

    A string constant naming a module counts too: that is how the package imports lazily
    (`importlib.import_module(name)` in `data/registry.py` and `features/__init__.py`).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import (the package has none)"
            found.add(node.module or "")
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # submodules
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return {m for m in found if m.split(".")[0] == PACKAGE and module_file(m)}


def import_closure(scripts: list[Path]) -> set[Path]:
    """Every package file that running `scripts` may execute, package `__init__`s included."""
    todo, seen = list(scripts), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                file = module_file(".".join(parts[:i]))
                if file is not None:
                    todo.append(file)
    return {p for p in seen if p.is_relative_to(SRC)}


def scripts_of(cmd: str) -> list[Path]:
    """The project's Python files a stage command runs."""
    words = shlex.split(cmd)
    scripts = [REPO / w for w in words if w.endswith(".py") and (REPO / w).is_file()]
    scripts += [module_file(words[i + 1]) for i, w in enumerate(words[:-1]) if w == "-m"]
    return [s for s in scripts if s is not None]


def stages() -> list[tuple[str, str, list[str]]]:
    with Repo(str(REPO)) as repo:
        return [
            (stage.addressing, stage.cmd, [str(dep.def_path) for dep in stage.deps])
            for stage in repo.index.stages
        ]


def uncovered(files: set[Path], deps: list[str]) -> list[str]:
    covered = [(REPO / d).resolve() for d in deps]
    return sorted(
        str(f.relative_to(REPO))
        for f in files
        if not any(f == c or f.is_relative_to(c) for c in covered)
    )


STAGES = stages()


@pytest.mark.parametrize(("name", "cmd", "deps"), STAGES, ids=[name for name, _, _ in STAGES])
def test_every_module_a_stage_imports_is_one_of_its_deps(name, cmd, deps):
    scripts = scripts_of(cmd)
    assert scripts, f"{name}: no script found in {cmd!r}"
    missing = uncovered({*import_closure(scripts), *scripts}, deps)
    assert not missing, f"dvc.yaml stage '{name}' imports modules it does not list: {missing}"


def test_the_closure_runs_package_inits_and_follows_lazy_imports_by_module_name():
    closure = import_closure([REPO / "stages/preprocess.py"])
    assert SRC / "affectpipe/__init__.py" in closure  # importing affectpipe.x runs it first
    assert SRC / "affectpipe/data/afewva.py" in closure  # data/registry.py imports it by name


def test_a_folder_dep_covers_the_files_under_it_and_nothing_else():
    metrics = {SRC / "affectpipe/metrics.py"}
    assert uncovered(metrics, ["src/affectpipe"]) == []
    assert uncovered(metrics, ["src/affectpipe/models"]) == ["src/affectpipe/metrics.py"]


def test_dvc_parses_yaml_with_the_c_loader():
    """Most of a no-op `dvc repro` is YAML: params.yaml once per stage, dvc.lock twice. The C
    loader (ruamel.yaml.clib, in the lock) made it 1.5x faster; without it DVC silently falls
    back to pure Python."""
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    assert CParser is not None and YAML(typ="safe").Parser is CParser  # what DVC's loader builds
