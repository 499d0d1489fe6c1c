"""Training the multimodal models with the shared loop, inference and fold reports."""

import json

import pytest

from affectpipe.config import ConfigError
from affectpipe.features.store import StaleCacheError
from affectpipe.train.multimodal import (
    av_test_metrics,
    multimodal_config,
    predict_av,
    train_multimodal,
)
from tests.test_multimodal_data import write_fixture

PARAMS = {
    "face_features": "videomae",
    "voice_features": "wav2vec2",
    "folds": "configured",
    "bad_input": "strict",
    "model": {"hidden": 64, "fusion": "concat", "dropout": 0.1, "attention_heads": 4},
    "loss": {"w_emotion": 1.0, "w_modality": 0.5, "w_congruence": 0.5, "balance": "weights"},
    "train": {
        "batch_size": 32,
        "epochs": 25,
        "lr": 0.003,
        "weight_decay": 0.01,
        "patience": 0,
        "warmup_frac": 0.05,
        "grad_clip": 1.0,
        "grad_accum": 1,
        "mixed_precision": "auto",
    },
}


@pytest.fixture(scope="module")
def ravdess_like(tmp_path_factory):
    root = write_fixture(tmp_path_factory.mktemp("fx"), actors=9, folds=3, voice_snr=1.0)
    (root / "features/videomae_fixture.h5").rename(root / "features/videomae_ravdess.h5")
    (root / "features/wav2vec2_fixture.h5").rename(root / "features/wav2vec2_ravdess.h5")
    return root


def run(root, modality, tmp_path, **over):
    cfg = multimodal_config(PARAMS | over)
    ckpt = tmp_path / f"{modality}"
    report = train_multimodal(
        modality,
        "ravdess",
        cfg,
        root / "processed",
        root / "features",
        ckpt,
        tmp_path / f"live-{modality}",
        seed=0,
    )
    return ckpt, report


@pytest.mark.parametrize("modality", ["fusion", "audio", "video"])
def test_each_model_learns_far_above_chance(ravdess_like, tmp_path, modality):
    ckpt, report = run(ravdess_like, modality, tmp_path)
    df = predict_av(ckpt, ravdess_like / "features", ravdess_like / "processed")
    m = av_test_metrics(df, list(range(8)))
    assert m["uar"] > 3 * m["chance_uar"], m
    assert (ckpt / "model.pt").is_file() and (ckpt / "train.json").is_file()
    assert (tmp_path / f"live-{modality}" / "metrics.json").is_file()
    assert json.loads((ckpt / "train.json").read_text())["val"]["score"] == report["val"]["score"]
    if modality == "fusion":
        assert m["congruence_auc"] > 0.6 and {
            "face_emotion_pred",
            "voice_emotion_pred",
            "congruence_prob",
            "prob_calm",
        } <= set(df)
    else:
        assert "congruence_prob" not in df


def test_predict_refuses_features_the_model_was_not_trained_on(ravdess_like, tmp_path):
    ckpt, _ = run(ravdess_like, "audio", tmp_path, train=PARAMS["train"] | {"epochs": 1})
    other = write_fixture(tmp_path / "other")
    feats = other / "features"
    (feats / "wav2vec2_fixture.h5").rename(feats / "wav2vec2_ravdess.h5")
    (feats / "videomae_fixture.h5").rename(feats / "videomae_ravdess.h5")
    import h5py

    with h5py.File(feats / "wav2vec2_ravdess.h5", "a") as f:
        f.attrs["config_hash"] = "changed"
    with pytest.raises(StaleCacheError, match="attribute 'config_hash' is 'changed'"):
        predict_av(ckpt, feats, ravdess_like / "processed")


def test_all_folds_reports_mean_and_std(ravdess_like, tmp_path):
    ckpt, report = run(
        ravdess_like, "video", tmp_path, folds="all", train=PARAMS["train"] | {"epochs": 8}
    )
    cv = json.loads((ckpt / "cv.json").read_text())
    assert cv["folds"] == 3 and set(cv["per_fold"]) == {"fold0", "fold1", "fold2"}
    assert (ckpt / "fold1/model.pt").is_file() and not (ckpt / "fold0").exists()
    accs = [f["accuracy"] for f in cv["per_fold"].values()]
    assert cv["accuracy_mean"] == pytest.approx(sum(accs) / 3)
    assert cv["accuracy_std"] >= 0


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"folds": "some"}, "unknown folds 'some'"),
        ({"model": {"hiden": 3}}, r"multimodal.model': unknown key\(s\) \['hiden'\]"),
        ({"train": {"epochs": 3}}, r"missing key\(s\) \['batch_size'\]"),
        ({"train": {"batch_size": 8, "lr_max": 1}}, r"unknown key.*lr_max"),
        ({"loss": {"balance": "sampler"}}, "unknown balance 'sampler'"),
    ],
)
def test_bad_params_fail_by_name(over, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        multimodal_config(PARAMS | over)


def test_stage_script_trains_from_params(ravdess_like, tmp_path):
    import importlib.util

    import yaml
    from typer.testing import CliRunner

    spec = importlib.util.spec_from_file_location("stage", "stages/train_multimodal.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    params = {
        "seed": 0,
        "multimodal": PARAMS | {"train": PARAMS["train"] | {"epochs": 2}},
        "preprocess": {"ravdess": {"pairs": {"incongruent_ratio": 1.0, "hard_fraction": 0.5}}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = [
        "audio",
        "ravdess",
        "--processed-dir",
        str(ravdess_like / "processed"),
        "--features-dir",
        str(ravdess_like / "features"),
        "--ckpt-dir",
        str(tmp_path / "ck"),
        "--live-dir",
        str(tmp_path / "live"),
        "--params",
        str(tmp_path / "params.yaml"),
    ]
    result = CliRunner().invoke(stage.app, args)
    assert result.exit_code == 0, result.output
    assert "train_multimodal audio ravdess: best epoch" in result.output
    assert (tmp_path / "ck/model.pt").is_file()
    params["multimodal"]["folds"] = "every"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(stage.app, args)
    assert result.exit_code == 1 and "unknown folds 'every'" in result.output


def test_checkpoint_without_projector_and_head_options_loads_as_the_mlp_variant(tmp_path):
    from dataclasses import asdict

    from affectpipe.models.checkpoint import save_checkpoint
    from affectpipe.models.multimodal import AVEmotionModel, AVModelConfig
    from affectpipe.train.multimodal import load_av_model

    cfg = AVModelConfig(face_dim=6, voice_dim=5, hidden=8, projector="mlp", congruence="mlp")
    old = {k: v for k, v in asdict(cfg).items() if k not in ("projector", "congruence")}
    save_checkpoint(tmp_path, AVEmotionModel(cfg).state_dict(), old, {}, 0, {})
    model, _ = load_av_model(tmp_path)
    assert (model.cfg.projector, model.cfg.congruence) == ("mlp", "mlp")
