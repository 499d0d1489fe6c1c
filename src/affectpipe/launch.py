"""Run a stage script in `compute.processes` processes, so scaling out changes no stage.

    python -m affectpipe.launch [--processes N] [--launcher accelerate|torchrun] -- stages/x.py ARGS

Without options, the process count and launcher come from params.yaml's `compute` section, or
the `AFFECTPIPE_PROCESSES` / `AFFECTPIPE_LAUNCHER` environment variables (`affectpipe.compute`):
they are not part of the stage's command, so changing them reruns nothing.

N == 1 replaces this process with `python stages/x.py ARGS` (nothing distributed, no launcher
start-up cost). N > 1 starts the script through `accelerate launch` (its torchrun-based
launcher: one process per GPU on CUDA, gloo on CPU) or plain `torchrun`. Both set RANK and
WORLD_SIZE, which the training loop (through Accelerate) and extraction (its shards) read.

Machine-specific settings never live in params.yaml (the same file runs on every machine):
several machines are described by `accelerate config` on each of them (its default config file
supplies `num_machines`, `machine_rank`, `main_process_ip`, `main_process_port`), or by extra
launcher options in the `AFFECTPIPE_LAUNCH_ARGS` environment variable. See docs/scale.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from affectpipe.compute import LAUNCHERS, load_compute
from affectpipe.config import ConfigError

EXTRA_ARGS_ENV = "AFFECTPIPE_LAUNCH_ARGS"


@dataclass
class LaunchConfig:
    """How many processes, through which launcher; `cuda` and `cores` describe this machine."""

    processes: int = 1  # total processes (all machines together, as `accelerate launch` counts)
    launcher: str = "accelerate"  # accelerate | torchrun
    cuda: bool = False  # GPUs present: one process per GPU (nccl); else CPU processes (gloo)
    cores: int = 1  # CPU cores of this machine, shared by its processes' intra-op threads
    config_file: bool = False  # an `accelerate config` file describes the machines
    extra: tuple[str, ...] = ()  # launcher options from AFFECTPIPE_LAUNCH_ARGS

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"unknown launcher '{self.launcher}'; valid: {list(LAUNCHERS)}")
        if self.processes < 1:
            raise ValueError(f"compute.processes must be >= 1, got {self.processes}")


def threads_per_process(cfg: LaunchConfig) -> int:
    """Intra-op threads: the cores split between the processes (more only oversubscribes)."""
    return max(1, cfg.cores // cfg.processes)


def launch_argv(cfg: LaunchConfig, script: Sequence[str]) -> list[str]:
    """The command line that runs `script` (path + its arguments) as `cfg` says."""
    python = [sys.executable]
    if cfg.processes == 1:
        return [*python, *script]
    n = str(cfg.processes)
    if cfg.launcher == "torchrun":
        where = list(cfg.extra) or ["--standalone"]  # multi-node: --nnodes, --rdzv-endpoint ...
        return [*python, "-m", "torch.distributed.run", "--nproc-per-node", n, *where, *script]
    argv = [*python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", n]
    argv += ["--num_cpu_threads_per_process", str(threads_per_process(cfg))]
    argv += ["--mixed_precision", "no", "--dynamo_backend", "no"]  # the stages choose these
    if not (cfg.config_file or cfg.extra):  # one machine: no config needed, any free port
        argv += ["--num_machines", "1", "--main_process_port", "0"]
    return [*argv, *cfg.extra, *script]


def launch_env(cfg: LaunchConfig, env: dict[str, str]) -> dict[str, str]:
    """Environment of the launched processes.

    Without CUDA, Accelerate joins the process group only when told it runs on CPU; otherwise
    each process would silently train alone on all the data.
    """
    env = dict(env)
    if cfg.processes > 1:
        env.setdefault("OMP_NUM_THREADS", str(threads_per_process(cfg)))
        if not cfg.cuda:
            env["ACCELERATE_USE_CPU"] = "true"
    return env


def has_accelerate_config() -> bool:
    from accelerate.commands.config import default_config_file

    return Path(default_config_file).is_file()


def machine_config(processes: int, launcher: str) -> LaunchConfig:
    """`LaunchConfig` for this machine: CUDA, cores, accelerate config, extra launcher args."""
    cfg = LaunchConfig(processes=processes, launcher=launcher)  # checks the values first
    if processes == 1:
        return cfg  # runs the script as it is: nothing to detect (and no torch import)
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return LaunchConfig(
        processes=processes,
        launcher=launcher,
        cuda=torch.cuda.is_available(),
        cores=cores or 1,
        config_file=launcher == "accelerate" and has_accelerate_config(),
        extra=tuple(shlex.split(os.environ.get(EXTRA_ARGS_ENV, ""))),
    )


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Launcher options before `--`, the script and its arguments after it."""
    argv = list(argv)
    if "--" not in argv:
        raise SystemExit("usage: python -m affectpipe.launch [options] -- SCRIPT [ARGS...]")
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m affectpipe.launch")
    parser.add_argument("--processes", type=int, help="default: compute.processes (total)")
    parser.add_argument("--launcher", choices=LAUNCHERS, help="default: compute.launcher")
    parser.add_argument("--params", default="params.yaml", help="where `compute` is read")
    args = parser.parse_args(argv[:cut])
    if cut + 1 >= len(argv):
        parser.error("no script after '--'")
    return args, argv[cut + 1 :]


def main(argv: Sequence[str] | None = None) -> int:
    args, script = parse(sys.argv[1:] if argv is None else argv)
    try:
        if args.processes is None or args.launcher is None:
            compute = load_compute(args.params)
            if args.processes is None:
                args.processes = compute.processes
            if args.launcher is None:
                args.launcher = compute.launcher
        cfg = machine_config(args.processes, args.launcher)
    except (ValueError, ConfigError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    cmd = launch_argv(cfg, script)
    env = launch_env(cfg, dict(os.environ))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, env)  # the launched command's exit status is the stage's
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
