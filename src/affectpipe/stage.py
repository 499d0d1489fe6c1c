"""Shared glue for stage scripts: known failures end in one clear line, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from affectpipe.config import ConfigError
from affectpipe.problems import InputProblem

T = TypeVar("T")

# Errors whose message is the whole story: bad input files, bad params, stale caches.
KNOWN_ERRORS: tuple[type[Exception], ...] = (
    InputProblem,
    ConfigError,
    ValueError,
    FileNotFoundError,
)


def run_stage(work: Callable[[], T]) -> T:
    """Run `work`; on a known error print `error: <message>` and exit 1 (stage scripts only)."""
    try:
        return work()
    except KNOWN_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
