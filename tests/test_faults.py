"""Faults leave nothing half-made: a full disk ends a stage in one line naming the file, with
nothing at the output's own path; a killed run's temporaries are removed and named; one input's
unforeseen failure is that input's skip."""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from affectpipe.config import load_params
from affectpipe.data import av, ravdess
from affectpipe.data.synthetic.afewva import write_synthetic_afewva
from affectpipe.features import store
from affectpipe.features.backbones import CACHE_ENV
from affectpipe.problems import atomic_path
from tests.data_configs import merged
from tests.pipeline_repo import REPO
from tests.test_features_extract import write_afewva
from tests.test_ravdess import PRE, TINY, download_config

FULL = OSError(errno.ENOSPC, "No space left on device")  # as a failed write() raises it: no name


def stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def params_file(folder: Path) -> Path:
    """params.yaml with the small RAVDESS preprocessing and the tiny CLIP extraction."""
    params = load_params(REPO / "params.yaml")
    params["preprocess"]["ravdess"] = merged(params["preprocess"]["ravdess"], PRE)
    params["compute"] = {"device": "cpu", "processes": 1, "launcher": "accelerate",
                         "dataloader_workers": 0}  # fmt: skip
    params["extract"]["clip"] = {"spec": "tiny", "batch_size": 4, "dtype": "float32"}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("ravdess") / "raw"
    ravdess.download(download_config(synthetic=TINY), out)
    return out


def one_error_line(result) -> str:
    """The run ended in SystemExit(1) (no other exception) with one `error:` line, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    return line


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def preprocess(raw: Path, out: Path, params: Path):
    args = ["ravdess", "--raw-dir", str(raw), "--out-dir", str(out), "--params", str(params)]
    return CliRunner().invoke(stage("preprocess").app, args)


@pytest.mark.parametrize("writer", ["npy", "wav", "csv", "report"])
def test_a_full_disk_in_preprocess_is_one_line_naming_the_file_and_leaves_no_part_of_it(
    raw, tmp_path, monkeypatch, writer
):
    out, params = tmp_path / "processed", params_file(tmp_path)
    failed: list[Path] = []

    def full(real):
        def write(*args, **kwargs):
            target = args[1] if writer == "csv" else args[0]  # to_csv(self, path)
            failed.append(Path(getattr(target, "name", target)))
            raise FULL

        return write

    if writer == "npy":
        monkeypatch.setattr(av.np, "save", full(np.save))
    elif writer == "wav":
        monkeypatch.setattr(av.media, "write_float_wav", full(av.media.write_float_wav))
    elif writer == "csv":
        monkeypatch.setattr(pd.DataFrame, "to_csv", full(pd.DataFrame.to_csv))
    else:
        monkeypatch.setattr(Path, "write_text", full(Path.write_text))
    result = preprocess(raw, out, params)
    line = one_error_line(result)
    final = {"npy": out / "frames", "wav": out / "audio", "csv": out / "clips.csv",
             "report": out / "report.json"}[writer]  # fmt: skip
    assert line.startswith(f"error: disk full writing {final}"), line
    assert line.endswith("(No space left on device)")
    named = Path(line.removeprefix("error: disk full writing ").split(" (")[0])
    assert failed[0].name.startswith(f".{named.name}.") and failed[0].suffix == ".tmp"
    assert not named.exists()  # nothing at the output's own path
    assert temporaries(out) == []  # and no temporary beside it


def test_a_killed_preprocess_run_leaves_temporaries_the_next_run_removes_and_names(raw, tmp_path):
    out = tmp_path / "processed"
    left = [out / "frames" / ".a.npy.77.tmp", out / ".clips.csv.77.tmp"]
    for p in left:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half a file")
    result = preprocess(raw, out, params_file(tmp_path))
    assert result.exit_code == 0, result.output
    assert (f"{out}: removed leftovers of an interrupted run: .clips.csv.77.tmp, "
            "frames/.a.npy.77.tmp") in result.stderr  # fmt: skip
    assert temporaries(out) == [] and (out / "report.json").is_file()


def test_atomic_path_names_the_output_when_the_disk_is_full(tmp_path):
    path = tmp_path / "x.bin"
    full = pytest.raises(OSError, match=r"No space left on device: '.*x\.bin'")
    with full as err, atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise FULL
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert list(tmp_path.iterdir()) == []


def extract(folder: Path, out_dir: Path, params: Path):
    args = ["clip", "afewva", "--in-dir", str(folder), "--out-dir", str(out_dir),
            "--params", str(params)]  # fmt: skip
    return CliRunner().invoke(stage("extract").app, args)


def test_extract_refuses_a_store_its_disk_cannot_hold_before_writing_any_of_it(
    tmp_path, monkeypatch
):
    folder = write_afewva(tmp_path / "afewva")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(store.shutil, "disk_usage", lambda _: usage(10**9, 10**9, 1000))
    result = extract(folder, tmp_path / "f", params_file(tmp_path))
    line = one_error_line(result)
    out = tmp_path / "f" / "clip_afewva.h5"
    assert line.startswith(f"error: disk full writing {out} (needs about 0.02 GB for 6 rows")
    assert line.endswith(f"0.00 GB free in {tmp_path / 'f'})")
    assert list((tmp_path / "f").iterdir()) == []


def test_a_full_disk_while_writing_the_store_is_one_line_and_leaves_no_file(tmp_path, monkeypatch):
    folder = write_afewva(tmp_path / "afewva")
    real = store.h5py.File

    def full(name, mode="r", *args, **kwargs):
        if mode == "w" and Path(name).name.startswith(".clip_afewva.h5."):
            raise OSError(errno.ENOSPC, "Unable to create file (No space left on device)")
        return real(name, mode, *args, **kwargs)

    monkeypatch.setattr(store.h5py, "File", full)
    result = extract(folder, tmp_path / "f", params_file(tmp_path))
    line = one_error_line(result)
    out = tmp_path / "f" / "clip_afewva.h5"
    assert line == (f"error: disk full writing {out} "
                    "(Unable to create file (No space left on device))")  # fmt: skip
    assert list((tmp_path / "f").iterdir()) == []  # no store, no part file, no temporary


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (needs root to mount; skipped where it cannot be)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                           capture_output=True, text=True)  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def run_stage_script(name: str, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), CACHE_ENV: str(cache)}
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{name}.py"), *args],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip


def test_a_real_full_disk_ends_preprocess_and_extract_in_one_line(raw, tmp_path, tiny_disk):
    params = str(params_file(tmp_path))
    out = tiny_disk / "processed"
    args = ["ravdess", "--raw-dir", str(raw), "--out-dir", str(out), "--params", params]
    pre = run_stage_script("preprocess", tmp_path / "cache", *args)
    assert pre.returncode == 1, pre.stderr
    assert "Traceback" not in pre.stderr
    [line] = [x for x in pre.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: disk full writing {out}/"), line
    named = Path(line.removeprefix("error: disk full writing ").split(" (")[0])
    assert not named.exists() and temporaries(out) == []
    folder = write_afewva(tmp_path / "afewva")
    shutil.rmtree(out)
    ext = run_stage_script("extract", tmp_path / "cache", "clip", "afewva", "--in-dir", str(folder),
                           "--out-dir", str(tiny_disk / "f"), "--params", params)  # fmt: skip
    assert ext.returncode == 1, ext.stderr
    [line] = [x for x in ext.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: disk full writing {tiny_disk / 'f' / 'clip_afewva.h5'}")
    assert list((tiny_disk / "f").iterdir()) == []


def test_a_full_disk_while_cropping_afewva_faces_is_one_line_naming_the_crop(tmp_path, monkeypatch):
    from PIL import Image

    from tests.test_afewva import PP, synthetic_config
    from tests.test_afewva import TINY as AFEWVA_TINY

    raw = tmp_path / "raw"
    write_synthetic_afewva(synthetic_config(**AFEWVA_TINY), raw)
    params = load_params(REPO / "params.yaml")
    params["preprocess"]["afewva"] = merged(params["preprocess"]["afewva"], PP)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def full(self, fp, *args, **kwargs):
        raise FULL

    monkeypatch.setattr(Image.Image, "save", full)  # the crop pool's workers are forked
    out = tmp_path / "processed"
    args = ["afewva", "--raw-dir", str(raw), "--out-dir", str(out),
            "--params", str(tmp_path / "params.yaml")]  # fmt: skip
    line = one_error_line(CliRunner().invoke(stage("preprocess").app, args))
    assert line.startswith(f"error: disk full writing {out / 'crops'}/"), line
    assert line.endswith(".png (No space left on device)")
    assert temporaries(out) == []
    assert not list((out / "crops").rglob("*.png")) and not (out / "frames.csv").exists()


def test_any_failure_on_one_voice_is_its_skip_and_the_others_are_kept(tmp_path, monkeypatch):
    from affectpipe.features import smile as S
    from affectpipe.features.sources import av_plan
    from affectpipe.problems import ProblemLog
    from tests.test_features_smile import processed, voice

    processed(tmp_path, {"a": voice(140.0), "b": voice(180.0), "c": voice(220.0)})
    real = S.functionals

    def buggy(feature_set, wave, rate, path):
        if path.endswith("b.wav"):
            raise ZeroDivisionError("openSMILE's own bug")
        return real(feature_set, wave, rate, path)

    monkeypatch.setattr(S, "functionals", buggy)
    for workers in (1, 2):  # in this process, and in forked workers
        log = ProblemLog("skip")
        plan = av_plan(tmp_path, "ravdess", "audio", log)
        rows = S.compute_functionals(plan, "eGeMAPSv02", 1, log, workers)
        assert sorted(rows) == ["a", "c"]
        [skip] = log.skipped
        assert skip["path"].endswith("b.wav")
        assert skip["reason"] == "unexpected ZeroDivisionError: openSMILE's own bug"

    def no_memory(*args):
        raise MemoryError

    monkeypatch.setattr(S, "functionals", no_memory)  # the run's problem, not the input's
    with pytest.raises(MemoryError):
        S.compute_functionals(av_plan(tmp_path, "ravdess", "audio", log), "eGeMAPSv02", 1, log, 1)


def test_non_finite_embeddings_are_that_inputs_skip_and_never_stored(tmp_path, monkeypatch):
    from affectpipe.compute import ComputeConfig
    from affectpipe.features import embed as E
    from affectpipe.features.extract import extract_features
    from affectpipe.features.store import open_features
    from affectpipe.problems import InputProblem
    from tests.test_features_extract import config

    cpu = ComputeConfig(device="cpu", processes=1, launcher="accelerate", dataloader_workers=0)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    folder = write_afewva(tmp_path / "afewva")
    real = E.embed

    def nan_first_row(*args, **kwargs):  # items in clip order: 001's frame 0 comes first
        out = real(*args, **kwargs)
        if not getattr(nan_first_row, "done", False):
            out[0, 0], nan_first_row.done = float("nan"), True
        return out

    monkeypatch.setattr(E, "embed", nan_first_row)
    out = tmp_path / "clip.h5"
    report, _ = extract_features("clip", "afewva", folder, out, config("clip", batch_size=4), cpu)
    [skip] = report["skipped"]
    assert skip["path"].endswith("crops/001/00000.png")
    assert skip["reason"] == "1 feature row(s) not finite (NaN/inf); not stored"
    with open_features(out) as r:
        assert r.clip_ids == ["001", "002"] and r["001"].shape[0] == 2
        assert list(r.labels("001")["frame"]) == [1, 2] and np.isfinite(r["001"]).all()
    nan_first_row.done = False
    with pytest.raises(InputProblem, match=r"00000\.png: 1 feature row\(s\) not finite"):
        extract_features("clip", "afewva", folder, out, config("clip", batch_size=4), cpu,
                         policy="strict")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afewva", "cache", "clip.h5"]


def test_a_checkpoint_written_by_another_process_has_the_same_bytes(tmp_path, monkeypatch):
    import os

    import torch

    from affectpipe.models.checkpoint import MODEL_FILE, save_checkpoint

    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    digests = []
    for pid in (1234, 98765):  # the temporary name carries the pid; the bytes must not
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)
        save_checkpoint(tmp_path / str(pid), state, {"k": 1}, {"dataset": "x"}, 0, {})
        digests.append((tmp_path / str(pid) / MODEL_FILE).read_bytes())
    assert digests[0] == digests[1]
