"""Bad input is reported, never hidden.

Every reader either raises `InputProblem` (one line: the file and what is wrong with it) or,
under the `skip` policy, records the same message in a `ProblemLog` that the stage writes to its
report. Nothing is dropped without a reason on record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Policy = Literal["strict", "skip"]
POLICIES: tuple[str, ...] = ("strict", "skip")


class InputProblem(ValueError):
    """A specific input file is unusable; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


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


def write_json(path: Path, obj: object) -> None:
    """Write JSON deterministically (sorted keys, fixed indent, trailing newline), atomically:
    a temporary name, then a rename, so a killed run or a full disk never leaves half a file
    at `path`. Serialising first means an unwritable object leaves `path` untouched."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
