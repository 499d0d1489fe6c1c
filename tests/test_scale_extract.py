"""Extraction in 2 processes, started the way the `extract` stage starts it, writes the same
bytes as 1 process.

Both runs use one intra-op thread per process: CPU kernels split their sums by thread count, so
1 process with 2 threads differs from 2 processes with 1 thread each in the last bit (measured:
1.2e-7 on wav2vec2 features of norm ~1). Sharding itself changes nothing: a batch holds the same
items whatever the number of processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_features_extract import write_afewva, write_av

ROOT = Path(__file__).resolve().parents[1]


def launch(tmp_path: Path, processes: int, launcher: str, script_args: list[str]) -> str:
    """Run `python -m affectpipe.launch ... -- stages/extract.py ARGS`; return its output."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "AFFECTPIPE_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable,
        "-m",
        "affectpipe.launch",
        "--processes",
        str(processes),
        "--launcher",
        launcher,
        "--",
        str(ROOT / "stages" / "extract.py"),
        *script_args,
    ]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "dataset", "launcher"),
    [("clip", "afewva", "accelerate"), ("wav2vec2", "ravdess", "torchrun")],
)
def test_two_launched_processes_write_the_same_bytes_as_one(tmp_path, kind, dataset, launcher):
    folder = write_afewva(tmp_path / "in") if dataset == "afewva" else write_av(tmp_path / "in")
    params = tmp_path / "params.yaml"
    params.write_text(
        "compute: {device: cpu, processes: 1, launcher: accelerate, dataloader_workers: 0}\n"
        f"extract:\n  bad_input: skip\n"
        f"  {kind}: {{spec: tiny, batch_size: 2, dtype: float32}}\n"
    )
    out = {}
    for n in (1, 2):
        args = [
            kind,
            dataset,
            "--in-dir",
            str(folder),
            "--out-dir",
            str(tmp_path / f"w{n}"),
            "--params",
            str(params),
        ]
        log = launch(tmp_path, n, launcher, args)
        assert log.count(f"extract {kind} {dataset}:") == 1, log  # rank 0 alone reports
        out[n] = tmp_path / f"w{n}" / f"{kind}_{dataset}.h5"
    assert sha(out[1]) == sha(out[2])
    assert sorted(p.name for p in out[2].parent.iterdir()) == [
        f"{kind}_{dataset}.h5",
        f"{kind}_{dataset}.report.json",
    ]  # no part file left behind
    reports = [json.loads(p.with_suffix(".report.json").read_text()) for p in out.values()]
    assert reports[0]["items"] == reports[1]["items"] > 2  # > one batch: both shards had work
