"""The shared training loop on a 10-line stand-in model."""

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from affectpipe.config import ConfigError, from_section
from affectpipe.models.checkpoint import load_checkpoint
from affectpipe.train.loop import LoopConfig, fit, resolve_precision, warmup_cosine
from tests.va_configs import loop


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x):
        return self.fc(x).squeeze(-1)


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    return TensorDataset(x, y)


def _step(model, batch):
    x, y = batch
    return {"loss": nn.functional.mse_loss(model(x), y)}


def _eval(model, loader, acc):
    se, n = 0.0, 0
    for x, y in loader:
        pred, y = acc.gather_for_metrics((model(x), y))
        se += float(((pred - y) ** 2).sum())
        n += len(y)
    return {"mse": se / n, "n": float(n)}


def _fit(tmp_path, **kw):
    torch.manual_seed(0)
    model = Linear()
    cfg = loop(**{"epochs": 30, "lr": 0.05, "monitor": "val/mse", "mode": "min", "patience": 0,
                  **kw})  # fmt: skip
    train = DataLoader(
        _data(), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    val = DataLoader(_data(30, seed=1), batch_size=8)
    result = fit(
        model,
        train,
        val,
        _step,
        _eval,
        cfg,
        tmp_path / "live",
        tmp_path / "ckpt",
        config={"kind": "linear"},
        provenance={"spec": "none"},
    )
    return model, result


def test_fit_learns_logs_every_metric_and_checkpoints_best(tmp_path):
    model, result = _fit(tmp_path)
    assert result.best_value < 0.01
    assert result.best_metrics["val/n"] == 30  # gather_for_metrics counts each sample once
    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert {"train", "val", "lr"} <= set(metrics)
    assert (tmp_path / "live" / "plots" / "metrics" / "val" / "mse.tsv").is_file()
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt["epoch"] == result.best_epoch and ckpt["config"] == {"kind": "linear"}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(loop().mixed_precision)  # what Accelerate ran with
    machine = {"processes": 1, "device": device, "mixed_precision": precision}  # recorded
    assert ckpt["provenance"] == {"spec": "none", "machine": machine}
    torch.testing.assert_close(ckpt["state_dict"]["fc.weight"], model.fc.weight.detach())


def test_fit_is_deterministic(tmp_path):
    m1, r1 = _fit(tmp_path / "a", epochs=3)
    m2, r2 = _fit(tmp_path / "b", epochs=3)
    assert r1.history == r2.history
    torch.testing.assert_close(m1.fc.weight, m2.fc.weight)


def test_early_stopping_restores_the_best_epoch(tmp_path):
    # a learning rate this high diverges after the first epochs: training must stop early
    model, result = _fit(tmp_path, lr=5.0, patience=2, grad_clip=0.0, warmup_frac=0.0)
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 3
    best_state = load_checkpoint(tmp_path / "ckpt")["state_dict"]
    torch.testing.assert_close(best_state["fc.weight"], model.fc.weight.detach())


def test_unknown_monitor_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="monitor 'val/acc' is not among the metrics"):
        _fit(tmp_path, epochs=1, monitor="val/acc")


def test_warmup_then_cosine_schedule():
    f = warmup_cosine(warmup=4, total=12)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(8) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(12) == pytest.approx(0.0)


def test_bad_loop_config_names_the_field():
    values = {"epochs": 1, "lr": 0.1, "weight_decay": 0.0, "warmup_frac": 0.0, "grad_clip": 1.0,
              "grad_accum": 1, "mixed_precision": "fp8", "patience": 0, "monitor": "val/loss",
              "mode": "min", "seed": 0}  # fmt: skip
    with pytest.raises(ConfigError, match=r"'train.mixed_precision': Input should be 'auto', 'no"):
        from_section(LoopConfig, values, "train")
    with pytest.raises(ConfigError, match=r"missing key 'train.seed'"):
        from_section(LoopConfig, {k: v for k, v in values.items() if k != "seed"}, "train")


def test_a_non_finite_training_loss_stops_with_one_line_and_no_checkpoint(tmp_path):
    torch.manual_seed(0)
    x, y = _data().tensors
    x[5, 1] = float("nan")  # one NaN feature
    train = DataLoader(TensorDataset(x, y), batch_size=8)
    with pytest.raises(ValueError, match=r"^epoch 1/2, batch 1: the training loss is nan"):
        fit(Linear(), train, DataLoader(_data(8)), _step, _eval,
            loop(epochs=2, monitor="val/mse", mode="min"), None, tmp_path / "ckpt")  # fmt: skip
    assert not (tmp_path / "ckpt").exists()


def test_checkpoints_refuse_non_finite_weights_and_record_nan_metrics_as_null(tmp_path):
    from affectpipe.models.checkpoint import save_checkpoint

    state = {"w": torch.tensor([1.0, float("inf")])}
    with pytest.raises(ValueError, match="refusing to save non-finite weights \\('w'\\)"):
        save_checkpoint(tmp_path / "bad", state, {}, {}, 0, {"loss": 1.0})
    assert not (tmp_path / "bad").exists()
    save_checkpoint(tmp_path / "ok", {"w": torch.ones(2)}, {}, {}, 3, {"pearson": math.nan})
    meta = json.loads((tmp_path / "ok" / "checkpoint.json").read_text())
    assert meta["metrics"] == {"pearson": None} and meta["epoch"] == 3
    assert load_checkpoint(tmp_path / "ok")["metrics"] == {"pearson": None}


def test_json_outputs_are_replaced_whole_or_not_at_all(tmp_path):
    from affectpipe.problems import write_json

    path = tmp_path / "report.json"
    write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json(path, {"a": math.nan})  # not serialisable: the old file stays
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left
