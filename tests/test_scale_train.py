"""Training in 2 CPU processes (gloo), started through `affectpipe.launch`.

- The loop splits each global batch between the processes and counts every validation sample
  once; the MoCo queue receives the keys of both processes.
- Fine-tuning one epoch in 2 processes gives the metrics of 1 process with the same global batch.

This file is also the 2-process worker: `python tests/test_scale_train.py worker OUT_DIR`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def launch(cwd: Path, processes: int, script_args: list[str], launcher: str = "accelerate") -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
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
        *script_args,
    ]
    run = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


# --- the worker: runs in each of the launched processes ----------------------------------------


def _queue_worker(out: Path, rank: int) -> None:
    """One training forward of the MoCo pretrainer under DDP, different frames per process."""
    import torch
    from accelerate import Accelerator

    from affectpipe.models.contrastive import ContrastivePretrainer
    from affectpipe.models.va import VAModel
    from tests.va_configs import contrastive, model_config

    torch.manual_seed(0)
    cfg = model_config("cached", 8, proj_hidden=16, embed_dim=8, reg_hidden=8, tf_layers=1,
                       tf_heads=2, tf_ff=16, dropout=0.0)  # fmt: skip
    model = ContrastivePretrainer(VAModel(cfg), contrastive(queue_size=64))
    acc = Accelerator(cpu=True)
    model = acc.prepare(model)
    b, length = 2, 4
    valid = torch.ones(b, length, dtype=torch.bool)
    valid[1, 3:] = rank == 1  # rank 1 has a padded window: 7 keys against rank 0's 8
    valid[1, 3] = rank == 0
    batch = {
        "x": torch.randn(b, length, 8),
        "valid": valid,
        "va": torch.rand(b, length, 2),
        "t": torch.arange(length).expand(b, length),
        "clip": torch.tensor([10 * rank, 10 * rank + 1]),
    }
    model.train()
    model(batch)
    queue = acc.unwrap_model(model).queue
    state = {
        "ptr": int(queue.ptr),
        "clip": queue.clip.tolist(),
        "sent": int(valid.sum()),
        "keys": queue.keys.tolist(),
    }
    (out / f"queue-{rank}.json").write_text(json.dumps(state))


def _loop_worker(out: Path, rank: int) -> None:
    """`fit` on a stand-in model, recording which samples each process trains on."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from affectpipe.train.loop import fit
    from tests.va_configs import loop

    seen: list[list[int]] = []

    def step(model, batch):
        i, x, y = batch
        seen.append(i.tolist())
        return {"loss": nn.functional.mse_loss(model(x).squeeze(-1), y)}

    def evaluate(model, loader, acc):
        se, n = 0.0, 0
        for _, x, y in loader:
            pred, y = acc.gather_for_metrics((model(x).squeeze(-1), y))
            se, n = se + float(((pred - y) ** 2).sum()), n + len(y)
        return {"mse": se / n, "n": float(n)}

    g = torch.Generator().manual_seed(0)
    x = torch.randn(61, 3, generator=g)
    data = TensorDataset(torch.arange(61), x, x @ torch.tensor([1.0, -2.0, 0.5]))
    train = DataLoader(
        torch.utils.data.Subset(data, range(32)),
        batch_size=8,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    val = DataLoader(torch.utils.data.Subset(data, range(32, 61)), batch_size=8)  # 29: 8+8+8+5
    torch.manual_seed(0)
    cfg = loop(epochs=2, lr=0.05, patience=0, monitor="val/mse", warmup_frac=0.0)
    result = fit(nn.Linear(3, 1), train, val, step, evaluate, cfg, out / "live", out / "ckpt")
    (out / f"loop-{rank}.json").write_text(json.dumps({"seen": seen, "history": result.history}))


def worker(out: Path) -> None:
    sys.path.insert(0, str(ROOT))  # the test helpers, from this file run as a script
    rank = int(os.environ["RANK"])
    _loop_worker(out, rank)  # first: it also creates the Accelerator state the queue uses
    _queue_worker(out, rank)


# --- the tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("workers")
    launch(out, 2, [str(Path(__file__).resolve()), "worker", str(out)], launcher="torchrun")
    return out


@pytest.mark.slow
def test_each_global_batch_is_split_between_the_two_processes(two_process_run):
    seen = [json.loads((two_process_run / f"loop-{r}.json").read_text())["seen"] for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 2 * 32 // 8  # 2 epochs of 4 global batches
    for mine, theirs in zip(*seen, strict=True):
        assert len(mine) == len(theirs) == 4 and not set(mine) & set(theirs)
    for epoch in (slice(0, 4), slice(4, 8)):  # every training sample once per epoch
        assert sorted(i for r in (0, 1) for b in seen[r][epoch] for i in b) == list(range(32))


@pytest.mark.slow
def test_validation_counts_each_sample_once_and_both_processes_agree(two_process_run):
    runs = [json.loads((two_process_run / f"loop-{r}.json").read_text()) for r in (0, 1)]
    assert runs[0]["history"] == runs[1]["history"]  # same selection and early-stop decisions
    assert {row["val/n"] for row in runs[0]["history"]} == {29.0}  # 29 = 8+8+8+5, padding dropped
    assert (two_process_run / "ckpt" / "checkpoint.json").is_file()


@pytest.mark.slow
def test_queue_receives_the_keys_of_both_processes(two_process_run):
    q = [json.loads((two_process_run / f"queue-{r}.json").read_text()) for r in (0, 1)]
    sent = q[0]["sent"] + q[1]["sent"]
    assert (q[0]["sent"], q[1]["sent"]) == (8, 7)
    assert q[0]["ptr"] == sent  # one enqueue of every key of both processes
    assert set(q[0]["clip"][:sent]) == {0, 1, 10, 11}
    assert q[0]["clip"][sent:] == [-1] * (64 - sent)  # no padding row was enqueued
    assert q[0] == {**q[1], "sent": q[0]["sent"]}  # the same queue in both processes


# --- the same global batch, 1 process against 2 ------------------------------------------------

TOLERANCE = 1e-4  # relative; why: see test_two_processes_finetune_like_one


@pytest.fixture(scope="module")
def va_inputs(tmp_path_factory) -> tuple[Path, Path]:
    """Tiny CLIP-like frame features and a stage-1 checkpoint without dropout."""
    from affectpipe.features.store import FeatureWriter
    from affectpipe.train.va import pretrain_va
    from tests.va_configs import pretrain_config

    rng = np.random.default_rng(0)
    mix = rng.normal(size=(2, 16))
    root = tmp_path_factory.mktemp("va")
    features = root / "clip_afewva.h5"
    attrs = {"backbone": "clip", "spec": "synthetic", "config_hash": "0", "dim": 16,
             "dataset": "afewva"}  # fmt: skip
    with FeatureWriter(features, attrs) as w:
        for i, split in enumerate(["train"] * 6 + ["val"] * 3):
            n = 20 + 3 * i
            va = np.tanh(rng.normal(size=(n, 2)).cumsum(0) / 4).astype(np.float32)
            x = va @ mix + 0.2 * rng.normal(size=(n, 16))
            w.add(
                f"{i:03d}",
                x,
                frame=np.arange(n),
                valence=va[:, 0],
                arousal=va[:, 1],
                actor=f"a{i}",
                split=split,
            )
    small = {
        "proj_hidden": 16,
        "embed_dim": 8,
        "reg_hidden": 8,
        "tf_layers": 1,
        "tf_heads": 2,
        "tf_ff": 16,
        "dropout": 0.0,
        "pool": "cls",
        "standardize": "diag",
    }
    window = {"length": 8, "batch_size": 8, "windows_per_epoch": 16, "eval_stride": 4}
    cfg = pretrain_config(epochs=1, lr=1e-3, weight_decay=0.01, warmup_frac=0.1, patience=0,
                          window=window, contrastive={"queue_size": 32}, model=small)  # fmt: skip
    pretrain_va(features, "cached", cfg, 0, root / "pre" / "fold0", None, {})  # holdout: fold0
    return features, root / "pre"


FINETUNE_PARAMS = """seed: 0
finetune:
  epochs: 1
  lr: 0.003
  weight_decay: 0.01
  warmup_frac: 0.1
  grad_clip: 1.0
  grad_accum: 1
  mixed_precision: "no"
  patience: 0
  window: {length: 8, batch_size: 8, windows_per_epoch: 64, eval_stride: 4}
  objective: {w_mse: 1.0, w_ccc: 0.0, train_projector: true}
extract:
  clip: {spec: synthetic, batch_size: 8, dtype: auto}
preprocess:
  afewva:
    split: {method: holdout, val_fraction: 0.3, test_fraction: 0.1, folds: 5, fold: 0, seed: 0}
"""


@pytest.mark.slow
def test_two_processes_finetune_like_one(va_inputs, tmp_path):
    """One epoch of 8 steps, global batch 8: 8 windows in 1 process, 4 + 4 in 2 processes.

    The MSE objective over full windows is a mean of equal-sized halves, so the averaged
    gradients of 2 processes equal the 1-process gradient up to float rounding: the all-reduce
    sums in another order (~1e-7 relative per step) and Adam's update, normalised by sqrt(v),
    passes such differences on, so after 8 steps metrics agree to ~1e-5; TOLERANCE is 1e-4.
    (The batch-CCC term, `w_ccc`, is left out: each process takes it over its own share of the
    batch, like BatchNorm without synchronisation, so it is not the same objective.)
    """
    features, init = va_inputs
    (tmp_path / "params.yaml").write_text(FINETUNE_PARAMS)
    metrics = {}
    for n in (1, 2):
        out = tmp_path / f"p{n}"
        launch(
            tmp_path,
            n,
            [
                str(ROOT / "stages" / "finetune.py"),
                "cached",
                "--inputs",
                str(features),
                "--init",
                str(init),
                "--out",
                str(out / "ckpt"),
                "--live",
                str(out / "live"),
                "--params",
                "params.yaml",
            ],
        )
        metrics[n] = json.loads((out / "ckpt" / "fold0" / "checkpoint.json").read_text())["metrics"]
    compared = sorted(k for k in metrics[1] if k != "train/ccc")  # batch CCC: per process
    assert {"train/loss", "val/ccc_mean", "val/rmse_valence"} <= set(compared)
    for k in compared:
        assert metrics[2][k] == pytest.approx(metrics[1][k], rel=TOLERANCE, abs=1e-6), k


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["audio", "fusion"])
def test_multimodal_stage_trains_in_two_processes(tmp_path, modality):
    """The stage's step and evaluation read model attributes through the DDP wrapper."""
    import yaml

    from tests.test_multimodal_data import FIXTURE_EXTRACT, write_fixture
    from tests.test_multimodal_train import PARAMS

    root = write_fixture(tmp_path / "fx", actors=9, folds=3)
    for kind in ("videomae", "wav2vec2"):
        (root / f"features/{kind}_fixture.h5").rename(root / f"features/{kind}_ravdess.h5")
    params = {
        "seed": 0,
        "preprocess": {"ravdess": {"pairs": {"incongruent_ratio": 1.0, "hard_fraction": 0.5}}},
        "train_multimodal": {**PARAMS, "train": {**PARAMS["train"], "epochs": 2}},
        "extract": FIXTURE_EXTRACT,
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    log = launch(
        tmp_path,
        2,
        [
            str(ROOT / "stages" / "train_multimodal.py"),
            modality,
            "ravdess",
            "--processed-dir",
            str(root / "processed"),
            "--features-dir",
            str(root / "features"),
            "--ckpt-dir",
            "ckpt",
            "--live-dir",
            "live",
            "--params",
            "params.yaml",
        ],
    )
    report = json.loads((tmp_path / "ckpt" / "train.json").read_text())
    assert f"train_multimodal {modality} ravdess: best epoch {report['best_epoch']}" in log
    assert 0.0 <= report["val"]["uar"] <= 1.0 and (tmp_path / "ckpt" / "model.pt").is_file()


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker(Path(sys.argv[2]))
