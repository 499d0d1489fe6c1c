"""Machine knobs: where and in how many processes the stages run, never what they compute.

They live in params.yaml's `compute` section, but no stage declares them as DVC params and no
stage command interpolates them: moving the project to another machine, or scaling it out,
reruns nothing. Each key can be overridden for one shell or one CI job by an environment
variable (`AFFECTPIPE_DEVICE`, `AFFECTPIPE_PROCESSES`, `AFFECTPIPE_LAUNCHER`,
`AFFECTPIPE_DATALOADER_WORKERS`), which wins over params.yaml.

What they do change: the device decides which float kernels run (and, with
`mixed_precision: auto`, bf16 on CUDA), and several processes split each batch, so statistics
taken per process (the batch CCC term, in-batch negatives, class-weight normalisation) differ
from one process's (docs/scale.md). Extraction and `lora`/`frozen_mlp` stay equal to float rounding.
Every checkpoint records the processes, device and precision it was trained with
(`provenance.machine`), so a result made another way is never mistaken for the default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from affectpipe.config import from_section, load_params, params_section, section

Launcher = Literal["accelerate", "torchrun"]
LAUNCHERS: tuple[str, ...] = get_args(Launcher)
ENV_PREFIX = "AFFECTPIPE_"


@params_section
class ComputeConfig:
    """params.yaml `compute`, after the environment's overrides."""

    device: str  # auto (CUDA when present) | cpu | cuda | cuda:N
    processes: Annotated[int, Field(ge=1, strict=True)]  # total processes of extraction/training
    launcher: Launcher  # starts them when processes > 1
    # decoding processes beside each model process; auto: 0 on a CPU, up to 4 beside a GPU
    dataloader_workers: Annotated[int, Field(ge=0, strict=True)] | Literal["auto"]


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
