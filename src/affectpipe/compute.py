"""Machine knobs: where and in how many processes the stages run, never what they compute.

They live in params.yaml's `compute` section, but no stage declares them as DVC params and no
stage command interpolates them: moving the project to another machine, or scaling it out,
reruns nothing. Each key can be overridden for one shell or one CI job by an environment
variable (`AFFECTPIPE_DEVICE`, `AFFECTPIPE_PROCESSES`, `AFFECTPIPE_LAUNCHER`,
`AFFECTPIPE_DATALOADER_WORKERS`), which wins over params.yaml.

What they do change: the device decides which float kernels run (and, with
`mixed_precision: auto`, bf16 on CUDA), and several processes split each batch, so statistics
taken per process (the batch CCC term, in-batch negatives, class-weight normalisation) differ
from one process's (docs/scale.md). Extraction and `lora`/`probe` stay equal to float rounding.
Every checkpoint records the processes, device and precision it was trained with
(`provenance.machine`), so a result made another way is never mistaken for the default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectpipe.config import ConfigError, from_section, load_params, section

LAUNCHERS: tuple[str, ...] = ("accelerate", "torchrun")
ENV_PREFIX = "AFFECTPIPE_"


@dataclass(frozen=True)
class ComputeConfig:
    """params.yaml `compute`, after the environment's overrides."""

    device: str  # auto (CUDA when present) | cpu | cuda | cuda:N
    processes: int  # total processes of extraction and training
    launcher: str  # accelerate | torchrun: starts them when processes > 1
    # decoding processes beside each model process; auto: 0 on a CPU, up to 4 beside a GPU
    dataloader_workers: int | str

    def __post_init__(self) -> None:
        if isinstance(self.processes, bool) or not isinstance(self.processes, int):
            raise ConfigError(f"compute.processes must be an integer, got {self.processes!r}")
        if self.processes < 1:
            raise ConfigError(f"compute.processes must be >= 1, got {self.processes}")
        if self.launcher not in LAUNCHERS:
            raise ConfigError(
                f"compute.launcher: unknown launcher '{self.launcher}'; valid: {list(LAUNCHERS)}"
            )


def _from_env(key: str, text: str) -> Any:
    """Environment values are strings: integers where the key takes one."""
    if key in ("processes", "dataloader_workers") and text.strip().lstrip("-").isdigit():
        return int(text)
    return text.strip()


def compute_config(
    params: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> ComputeConfig:
    """`compute` from params.yaml, each key overridden by `AFFECTPIPE_<KEY>` when set."""
    environ = os.environ if environ is None else environ
    values = dict(section(dict(params), "compute"))
    for key in list(values):
        var = ENV_PREFIX + key.upper()
        if environ.get(var, "").strip():
            values[key] = _from_env(key, environ[var])
    return from_section(ComputeConfig, values, "compute")


def load_compute(params_file: Path | str = "params.yaml") -> ComputeConfig:
    return compute_config(load_params(params_file))
