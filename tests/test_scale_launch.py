"""The launcher: which command `compute.processes` and `compute.launcher` turn a stage into."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from affectpipe.launch import LaunchConfig, launch_argv, launch_env, parse, threads_per_process

SCRIPT = ["stages/pretrain.py", "cached", "--inputs", "x.h5"]


def test_one_process_runs_the_script_itself_with_the_environment_untouched():
    cfg = LaunchConfig(processes=1, cores=2)
    assert launch_argv(cfg, SCRIPT) == [sys.executable, *SCRIPT]
    assert launch_env(cfg, {"A": "1"}) == {"A": "1"}


def test_cpu_processes_go_through_accelerate_with_gloo_and_split_cores():
    cfg = LaunchConfig(processes=2, cores=2)
    argv = launch_argv(cfg, SCRIPT)
    assert argv[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert argv[-len(SCRIPT) :] == SCRIPT
    assert argv[3] == "--multi_gpu"  # accelerate's torchrun-based launcher, CPU or GPU
    assert argv[argv.index("--num_processes") + 1] == "2"
    assert argv[argv.index("--num_cpu_threads_per_process") + 1] == "1"
    assert argv[argv.index("--num_machines") + 1] == "1" and "--main_process_port" in argv
    env = launch_env(cfg, {})
    assert env["ACCELERATE_USE_CPU"] == "true" and env["OMP_NUM_THREADS"] == "1"


def test_gpus_are_not_told_to_use_the_cpu():
    cfg = LaunchConfig(processes=4, cores=32, cuda=True)
    env = launch_env(cfg, {})
    assert "ACCELERATE_USE_CPU" not in env and env["OMP_NUM_THREADS"] == "8"


def test_machine_settings_come_from_the_accelerate_config_or_extra_args():
    """Several machines: nothing that would override `accelerate config` (`--num_machines 1`)."""
    argv = launch_argv(LaunchConfig(processes=8, config_file=True), SCRIPT)
    assert "--num_machines" not in argv and "--main_process_port" not in argv
    extra = ("--num_machines", "2", "--machine_rank", "1", "--main_process_ip", "10.0.0.1")
    argv = launch_argv(LaunchConfig(processes=8, extra=extra), SCRIPT)
    assert argv[-len(SCRIPT) - len(extra) :] == [*extra, *SCRIPT]
    assert argv.count("--num_machines") == 1 and "--main_process_port" not in argv


def test_torchrun_is_standalone_on_one_machine():
    argv = launch_argv(LaunchConfig(processes=2, launcher="torchrun"), SCRIPT)
    assert argv[1:6] == ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone"]


@pytest.mark.parametrize(
    ("cores", "processes", "threads"), [(2, 2, 1), (2, 4, 1), (16, 4, 4), (3, 2, 1)]
)
def test_threads_never_oversubscribe_the_cores(cores, processes, threads):
    assert threads_per_process(LaunchConfig(processes=processes, cores=cores)) == threads


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"launcher": "mpirun"}, "unknown launcher 'mpirun'"),
        ({"processes": 0}, "must be >= 1, got 0"),
    ],
)
def test_bad_settings_fail_by_name(kw, match):
    with pytest.raises(ValueError, match=match):
        LaunchConfig(**kw)


def test_options_before_the_separator_script_after_it():
    args, script = parse(["--processes", "3", "--", *SCRIPT, "--processes", "9"])
    assert args.processes == 3 and args.launcher is None  # unset: params.yaml's compute
    assert script == [*SCRIPT, "--processes", "9"]


def test_without_options_the_launcher_reads_compute_and_the_environment_wins(tmp_path):
    """Machine knobs are not part of the stage command: params.yaml or AFFECTPIPE_* say."""
    params = tmp_path / "params.yaml"
    params.write_text(
        "compute: {device: cpu, processes: 1, launcher: torchrun, dataloader_workers: 0}\n"
    )
    script = tmp_path / "s.py"
    script.write_text("import os\nprint(os.environ.get('WORLD_SIZE', 'single'))\n")
    cmd = [sys.executable, "-m", "affectpipe.launch", "--params", str(params), "--", str(script)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout == "single\n"  # 1 process: the script itself
    env = {**os.environ, "AFFECTPIPE_PROCESSES": "0"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 1 and "greater than or equal to 1, got 0" in run.stderr


def test_the_module_runs_one_process_and_passes_its_exit_status_on(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import sys\nprint('args', sys.argv[1:])\nsys.exit(3)\n")
    run = subprocess.run(
        [sys.executable, "-m", "affectpipe.launch", "--", str(script), "a", "b"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3 and run.stdout == "args ['a', 'b']\n"


def test_the_module_refuses_a_command_line_without_separator():
    run = subprocess.run(
        [sys.executable, "-m", "affectpipe.launch", "stages/x.py"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "usage: python -m affectpipe.launch" in run.stderr
