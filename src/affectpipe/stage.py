"""Shared glue for stage scripts: known failures end in one clear line, not a traceback."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from typing import TypeVar

from affectpipe.config import ConfigError
from affectpipe.problems import RUN_ERRNOS, InputProblem

T = TypeVar("T")

# Errors whose message is the whole story: bad input files, bad params, stale caches.
KNOWN_ERRORS: tuple[type[Exception], ...] = (
    InputProblem,
    ConfigError,
    ValueError,
    FileNotFoundError,
)
# A full or read-only disk (`problems.RUN_ERRNOS`), as the one line says it.
DISK_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def disk_error_line(err: OSError) -> str:
    """`error: disk full writing <path> (<why>)`: the output that did not fit, named by the
    writer (`problems.atomic_path`, `store.check_room`)."""
    where = err.filename or "an output file (the writer did not name it)"
    return f"error: {DISK_ERRORS[err.errno]} writing {where} ({err.strerror})"


def run_stage(work: Callable[[], T]) -> T:
    """Run `work`; on a known error, or a full or read-only disk, print one `error:` line and
    exit 1 (stage scripts only)."""
    try:
        return work()
    except KNOWN_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as err:
        if err.errno not in RUN_ERRNOS:
            raise
        print(disk_error_line(err), file=sys.stderr)
        raise SystemExit(1) from None
