"""Bad input is reported, never hidden.

Every reader either raises `InputProblem` (one line: the file and what is wrong with it) or,
under the `skip` policy, records the same message in a `ProblemLog` that the stage writes to its
report. Nothing is dropped without a reason on record.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Policy = Literal["strict", "skip"]
POLICIES: tuple[str, ...] = ("strict", "skip")

NOT_APPLICABLE = "not_applicable"  # the key (store attribute, record field) naming why a
# dataset cannot support a store or a model: an audio-only release has no face


class InputProblem(ValueError):
    """A specific input file is unusable; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


# A full or read-only disk is the run's problem, not the input's: it would fail every input.
RUN_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def as_input_problem(path: Path | str, err: Exception) -> InputProblem:
    """`err`, raised while handling the one input `path`, as that input's problem (its type and
    message), so that one file's unforeseen failure costs no other file. Errors about the run
    itself (out of memory, a full or read-only disk) are re-raised: every input would hit them."""
    if isinstance(err, InputProblem):
        return err
    if isinstance(err, MemoryError) or (isinstance(err, OSError) and err.errno in RUN_ERRNOS):
        raise err
    return InputProblem(path, f"unexpected {type(err).__name__}: {err}")


@dataclass
class ProblemLog:
    """Collects skipped inputs under the `skip` policy; re-raises under `strict`."""

    policy: Policy = "strict"
    skipped: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown bad-input policy '{self.policy}'; valid: {list(POLICIES)}")

    def report(self, problem: InputProblem) -> None:
        """Raise under `strict`; record and carry on under `skip`."""
        if self.policy == "strict":
            raise problem
        self.skipped.append({"path": problem.path, "reason": problem.problem})

    def to_json(self) -> list[dict[str, str]]:
        return sorted(self.skipped, key=lambda s: (s["path"], s["reason"]))


def files_under(root: Path) -> list[Path]:
    """Every file under `root`, sorted, by the paths a reader of `root` sees: symlinked folders
    are followed, each real folder once (so a link loop ends); a link to nothing, or to
    itself, is listed as a file."""
    found, seen = [], set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        found += [Path(folder) / n for n in names]
    return sorted(found)


def account_files(
    files: Iterable[Path], used: Iterable[Path | str], log: ProblemLog, ignored: dict[str, str]
) -> dict[str, Any]:
    """Every one of `files` (`files_under` the raw folder, listed once by the caller, who
    also decides `ignored` from it) in one class: `used` (it reached an output), skipped (the log
    holds its reason), ignored (`ignored` maps it to why) or, never on purpose, `unaccounted`:
    a file the stage neither read nor explained. The counts add up to `files`."""
    used_, skipped = {str(p) for p in used}, {s["path"] for s in log.skipped}
    counts = {"used": 0, "skipped": 0, "ignored": 0}
    listed, unaccounted = [], []
    for path in map(str, files):
        if path in used_:
            counts["used"] += 1
        elif path in skipped:
            counts["skipped"] += 1
        elif path in ignored:
            counts["ignored"] += 1
            listed.append({"path": path, "reason": ignored[path]})
        else:
            unaccounted.append(path)
    total = sum(counts.values()) + len(unaccounted)
    return {"files": total, **counts, "ignored_files": listed, "unaccounted": unaccounted}


# Every output written through `atomic_path` lies at `.<name>.<pid>.tmp` until it is complete.
TEMP_GLOB = ".*.tmp"


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary name beside `path` to write to; renamed to `path` when the block ends
    cleanly, removed when it does not, so a killed run or a full disk never leaves half a file
    at `path`. A full or read-only disk is re-raised naming `path` (a failed `write()` names no
    file), so the stage's one line says which output did not fit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in RUN_ERRNOS and err.filename in (None, str(tmp)):
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def remove_temps(folder: Path) -> list[Path]:
    """Delete the temporaries (`atomic_path`) a killed run left anywhere under `folder`; return
    them, for the log (`note_leftovers`)."""
    if not Path(folder).is_dir():
        return []
    stale = sorted(p for p in Path(folder).rglob(TEMP_GLOB) if p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def note_leftovers(folder: Path, stale: list[Path]) -> None:
    """One stderr line naming what a killed run left in `folder` and this run removed."""
    if stale:
        names = ", ".join(str(p.relative_to(folder)) for p in stale)
        print(f"{folder}: removed leftovers of an interrupted run: {names}", file=sys.stderr)


def write_json(path: Path, obj: object) -> None:
    """Write JSON deterministically (sorted keys, fixed indent, trailing newline), atomically
    (`atomic_path`). Serialising first means an unwritable object leaves `path` untouched."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
