"""VA stages end to end on tiny inputs: block cache from PNG crops, pretrain, finetune, predict."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affectpipe.compute import ComputeConfig
from affectpipe.features.block_cache import BlockCacheConfig, build_block_cache
from affectpipe.features.store import FeatureWriter, open_features
from affectpipe.problems import InputProblem, ProblemLog
from affectpipe.train.va import finetune_va, pretrain_va
from affectpipe.va_inference import embed_va, predict_va
from tests.va_configs import finetune_config, pretrain_config

SPLITS = {"a1": "train", "a2": "train", "a3": "train", "a4": "val", "a5": "test"}
SMALL = {
    "proj_hidden": 32,
    "embed_dim": 16,
    "reg_hidden": 16,
    "tf_layers": 1,
    "tf_heads": 2,
    "tf_ff": 32,
    "pool": "cls",
    "standardize": "diag",
}
WINDOW = {"length": 8, "batch_size": 8, "windows_per_epoch": 32, "eval_stride": 4}


def _trajectory(rng, n):
    """A smooth VA trace in [-0.9, 0.9], as annotated clips look."""
    t = np.linspace(0, 1, n)
    phase = rng.uniform(0, 2 * np.pi, 2)
    return np.stack(
        [0.9 * np.sin(2 * np.pi * t + phase[0]), 0.9 * np.cos(2 * np.pi * t + phase[1])], 1
    ).astype(np.float32)


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    """CLIP-like frame features linear in VA plus an actor offset and noise."""
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(2, 32))
    path = tmp_path_factory.mktemp("feat") / "clip_afewva.h5"
    attrs = {"backbone": "clip", "spec": "synthetic", "config_hash": "0", "dim": 32}
    with FeatureWriter(path, attrs) as w:
        for i, (actor, split) in enumerate(sorted(SPLITS.items()) * 2):
            n = 24 + 4 * (i % 3)
            va = _trajectory(rng, n)
            x = va @ mix + 0.3 * rng.normal(size=32) + 0.1 * rng.normal(size=(n, 32))
            w.add(
                f"{i:03d}",
                x,
                frame=np.arange(n),
                valence=va[:, 0],
                arousal=va[:, 1],
                actor=actor,
                split=split,
            )
    return path


def _pretrain(epochs, queue_size=4096, **model):
    return pretrain_config(epochs=epochs, lr=3e-3, patience=0, warmup_frac=0.0, window=WINDOW,
                           contrastive={"queue_size": queue_size},
                           model={**SMALL, **model})  # fmt: skip


def _finetune(epochs, train_projector):
    return finetune_config(epochs=epochs, lr=3e-3, patience=0, warmup_frac=0.0, window=WINDOW,
                           objective={"train_projector": train_projector})  # fmt: skip


@pytest.fixture(scope="module")
def cached_run(features, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    pre = pretrain_va(
        features, "cached", _pretrain(2, queue_size=64), 0, out / "pre", out / "live_pre", {"k": 1}
    )
    ft = finetune_va(
        features, out / "pre", _finetune(25, True), 0, out / "ft", out / "live_ft", {"k": 2}
    )
    return out, pre, ft


def test_cached_pipeline_learns_far_above_predicting_the_mean(cached_run, features):
    out, pre, ft = cached_run
    assert np.isfinite(pre.best_value)
    assert ft.best_metrics["val/ccc_mean"] > 0.6, ft.best_metrics
    df = predict_va(out / "ft", features, split="test")
    from affectpipe import metrics

    assert metrics.ccc(df.valence_true, df.valence_pred) > 0.5
    assert metrics.ccc(df.arousal_true, df.arousal_pred) > 0.5


def test_predictions_cover_every_test_frame_once(cached_run, features):
    out = cached_run[0]
    df = predict_va(out / "ft", features, split="test")
    assert list(df.columns) == [
        "clip",
        "frame",
        "valence_true",
        "arousal_true",
        "valence_pred",
        "arousal_pred",
    ]
    with open_features(features) as r:
        test = [c for c in r.clip_ids if r.labels(c)["split"] == "test"]
        expected = sum(len(r.labels(c)["frame"]) for c in test)
    assert len(df) == expected and not df.duplicated(["clip", "frame"]).any()
    assert set(df["clip"]) == set(test)
    assert df[["valence_pred", "arousal_pred"]].abs().max().max() <= 1


def test_embeddings_for_plots(cached_run, features):
    emb = embed_va(cached_run[0] / "ft", features, split="val")
    assert emb["z"].shape == (len(emb["frames"]), 16)
    assert emb["g"].shape == (len(emb["clips"]), 16)


def test_checkpoint_records_provenance_and_params(cached_run):
    from affectpipe.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(cached_run[0] / "ft")
    assert ckpt["provenance"]["inputs"]["spec"] == "synthetic"
    assert ckpt["provenance"]["params"] == {"k": 2}
    assert ckpt["config"]["model"]["pipeline"] == "cached"
    assert (cached_run[0] / "live_ft" / "metrics.json").is_file()


def test_wrong_input_kind_is_refused(features, tmp_path):
    with pytest.raises(InputProblem, match="pipeline 'lora' trains on the block cache"):
        pretrain_va(features, "lora", _pretrain(1), 0, tmp_path / "p", None, {})


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    """A processed AFEW-VA folder: frames.csv and PNG crops whose brightness follows VA."""
    root = tmp_path_factory.mktemp("processed")
    rng = np.random.default_rng(1)
    rows = []
    for i, (actor, split) in enumerate(sorted(SPLITS.items())):
        cid = f"{i:03d}"
        (root / "crops" / cid).mkdir(parents=True)
        va = _trajectory(rng, 10)
        for f in range(10):
            img = np.full((32, 32, 3), 128, np.uint8)
            img[:16] = int(127 + 120 * va[f, 0])
            img[16:, :16] = int(127 + 120 * va[f, 1])
            Image.fromarray(img).save(root / "crops" / cid / f"{f:05d}.png")
            rows.append(
                {
                    "clip": cid,
                    "frame": f,
                    "crop_path": f"crops/{cid}/{f:05d}.png",
                    "valence": va[f, 0],
                    "arousal": va[f, 1],
                    "actor": actor,
                    "split": split,
                }
            )
    pd.DataFrame(rows).to_csv(root / "frames.csv", index=False)
    return root


def test_lora_pipeline_from_png_crops_to_predictions(crops, tmp_path):
    cache = tmp_path / "blocks.h5"
    cpu = ComputeConfig(device="cpu", processes=1, launcher="accelerate", dataloader_workers=0)
    made = build_block_cache(
        crops, cache, "tiny", [-1], BlockCacheConfig(batch_size=4), cpu, ProblemLog("strict")
    )
    assert made == 50
    with open_features(cache) as r:
        assert r.attrs["block"] == 3 and r.dim == 17 * 64
    pretrain_va(
        cache, "lora", _pretrain(1, queue_size=32, lora_blocks=[-1]), 0, tmp_path / "pre", None, {}
    )
    ft = finetune_va(cache, tmp_path / "pre", _finetune(2, False), 0, tmp_path / "ft", None, {})
    assert np.isfinite(ft.best_value)
    df = predict_va(tmp_path / "ft", cache, split="test")
    assert len(df) == 10 and df["clip"].unique().tolist() == ["004"]


@pytest.fixture(scope="module")
def linear_run(features, tmp_path_factory):
    out = tmp_path_factory.mktemp("linear")
    pre = pretrain_va(features, "linear_probe", _pretrain(2), 0, out / "pre", out / "live_pre", {})
    ft = finetune_va(
        features, out / "pre", _finetune(25, True), 0, out / "ft", out / "live_ft", {"k": 2}
    )
    return out, pre, ft


def test_linear_probe_stage1_writes_its_start_and_trains_nothing(linear_run):
    from affectpipe.models.load import load_va_model

    out, pre, _ = linear_run
    assert pre.history == [] and pre.best_epoch == -1
    model, ckpt = load_va_model(out / "pre")
    assert ckpt["config"]["model"]["pipeline"] == "linear_probe"
    assert model.regressor.linear.weight.abs().max() == 0  # untrained
    assert model.feat_scale.abs().sum() > 0 and model.feat_mean.abs().sum() > 0  # train stats
    assert (out / "live_pre").is_dir()  # the stage's declared dvclive output exists


def test_linear_probe_learns_a_linear_signal_far_above_the_mean(linear_run, features):
    from affectpipe import metrics

    out, _, ft = linear_run
    assert ft.best_metrics["val/ccc_mean"] > 0.6, ft.best_metrics
    df = predict_va(out / "ft", features, split="test")
    true, pred = df[["valence_true", "arousal_true"]], df[["valence_pred", "arousal_pred"]]
    mean = np.broadcast_to(true.mean().to_numpy(), true.shape)  # the mean's RMSE, a lower bound
    for j in range(2):
        assert metrics.ccc(true.iloc[:, j], pred.iloc[:, j]) > 0.5
        assert metrics.rmse(true.iloc[:, j], pred.iloc[:, j]) < metrics.rmse(
            true.iloc[:, j], mean[:, j]
        )
    assert embed_va(out / "ft", features, split="test") is None  # no z or g to draw


def test_stage1_figures_come_from_the_pretrain_checkpoint_and_g_has_a_point_per_clip(
    cached_run, linear_run, features, tmp_path, monkeypatch
):
    from affectpipe import plots
    from affectpipe.evaluate import EvaluateConfig, VAModels, evaluate_va

    drawn: dict[str, np.ndarray] = {}
    original = plots.plot_embeddings

    def spy(embeddings, colour_by, path, *args, **kwargs):
        drawn[path.name] = embeddings
        assert all(len(v) == len(embeddings) for v in colour_by.values())
        original(embeddings, colour_by, path, *args, **kwargs)

    monkeypatch.setattr(plots, "plot_embeddings", spy)
    for sub in ("va", "figures"):
        (tmp_path / sub).mkdir()
    cached, linear = cached_run[0], linear_run[0]
    root = tmp_path / "models"  # the stages' layout: <stage>/<variant>/fold<k>/
    for stage, sub in (("finetune", "ft"), ("pretrain", "pre")):
        for variant, run in (("cached", cached), ("linear_probe", linear)):
            (root / stage / variant).mkdir(parents=True)
            (root / stage / variant / "fold0").symlink_to(run / sub, target_is_directory=True)
    cfg = EvaluateConfig(embedding_plots=["pca"], trace_clips=1, seed=0)
    va = evaluate_va(cfg, VAModels(root / "finetune", None, root / "pretrain"), tmp_path)
    assert set(va) == {"cached", "linear_probe", "mean_baseline", "n_folds"}
    assert sorted(drawn) == [
        "va_clip_embeddings_pca_cached_finetune.png", "va_clip_embeddings_pca_cached_pretrain.png",
        "va_embeddings_pca_cached_finetune.png", "va_embeddings_pca_cached_pretrain.png",
    ]  # fmt: skip
    assert all((tmp_path / "figures" / name).is_file() for name in drawn)
    stage1, stage2 = (embed_va(cached / s, features, split="test") for s in ("pre", "ft"))
    np.testing.assert_array_equal(drawn["va_embeddings_pca_cached_pretrain.png"], stage1["z"])
    np.testing.assert_array_equal(drawn["va_clip_embeddings_pca_cached_pretrain.png"], stage1["g"])
    np.testing.assert_array_equal(drawn["va_embeddings_pca_cached_finetune.png"], stage2["z"])
    assert not np.allclose(stage1["z"], stage2["z"])  # fine-tuning moved the frame embeddings
    n_clips = len({c for c in pd.read_csv(tmp_path / "va" / "cached_frames.csv")["clip"]})
    assert drawn["va_clip_embeddings_pca_cached_pretrain.png"].shape[0] == n_clips
