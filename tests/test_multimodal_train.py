"""Training the multimodal models with the stage script, scoring them in evaluate, per fold."""

import json
import re

import pytest
import yaml
from sklearn.metrics import log_loss
from typer.testing import CliRunner

from affectpipe.av_inference import predict_av
from affectpipe.calibration import choose_threshold, load_calibration
from affectpipe.config import ConfigError
from affectpipe.evaluate import evaluate_av_model
from affectpipe.features.store import StaleCacheError
from affectpipe.metrics import av_test_metrics
from affectpipe.train.multimodal import (
    BaselineOwnParams,
    FusionOwnParams,
    loss_terms,
    stage_config,
)
from tests.test_multimodal_data import FIXTURE_EXTRACT, write_fixture

PARAMS = {
    "face_features": "videomae",
    "voice_features": "wav2vec2",
    "folds": "configured",
    "bad_input": "strict",
    "voice_layers": {"mode": "weighted", "layers": "all"},
    "model": {"hidden": 64, "projector": "linear", "dropout": 0.1, "speaker_norm": "none"},
    "loss": {"balance": "weights"},
    "train": {
        "batch_size": 32,
        "epochs": 25,
        "lr": 0.003,
        "weight_decay": 0.01,
        "warmup_frac": 0.05,
        "grad_clip": 1.0,
        "grad_accum": 1,
        "patience": 0,
        "mixed_precision": "auto",
    },
    "fusion": {
        "classifier": "network",
        "fusion": "concat",
        "congruence": "agreement",
        "attention_heads": 4,
        "w_emotion": 1.0,
        "w_modality": 0.5,
        "w_congruence": 0.5,
    },
    "audio": {"classifier": "network", "w_emotion": 1.0},
    "video": {"classifier": "network", "w_emotion": 1.0},
    "calibration": {"threshold": "balanced_accuracy", "temperature_range": [0.05, 20.0]},
}
PAIRS = {"ravdess": {"pairs": {"incongruent_ratio": 1.0, "hard_fraction": 0.5}}}


def stage():
    """The stage script as a module (it holds the fold loop)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("stage", "stages/train_multimodal.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ravdess_like(tmp_path_factory):
    root = write_fixture(tmp_path_factory.mktemp("fx"), actors=9, folds=3, voice_snr=1.0)
    (root / "features/videomae_fixture.h5").rename(root / "features/videomae_ravdess.h5")
    (root / "features/wav2vec2_fixture.h5").rename(root / "features/wav2vec2_ravdess.h5")
    return root


def run(root, modality, tmp_path, **over):
    """Run the stage script on the fixture; returns (checkpoint folder, its train.json, output)."""
    params = {"seed": 0, "train_multimodal": PARAMS | over, "preprocess": PAIRS,
              "extract": FIXTURE_EXTRACT}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    ckpt = tmp_path / f"{modality}"
    args = [modality, "ravdess", "--processed-dir", str(root / "processed"),
            "--features-dir", str(root / "features"), "--ckpt-dir", str(ckpt),
            "--live-dir", str(tmp_path / f"live-{modality}"),
            "--params", str(tmp_path / "params.yaml")]  # fmt: skip
    result = CliRunner().invoke(stage().app, args)
    assert result.exit_code == 0, result.output
    return ckpt, json.loads((ckpt / "train.json").read_text()), result.output


@pytest.mark.parametrize("modality", ["fusion", "audio", "video"])
def test_each_model_learns_far_above_chance(ravdess_like, tmp_path, modality):
    ckpt, report, output = run(ravdess_like, modality, tmp_path)
    assert f"train_multimodal {modality} ravdess: best epoch {report['best_epoch']}" in output
    frames, _ = predict_av(ckpt, ravdess_like / "features", ravdess_like / "processed")
    df = frames["test"]
    m = av_test_metrics(df, list(range(8)))
    assert m["uar"] > 3 * m["chance_uar"], m
    assert (ckpt / "model.pt").is_file() and (ckpt / "train.json").is_file()
    assert (tmp_path / f"live-{modality}" / "metrics.json").is_file()
    assert 0 <= report["val"]["score"] <= 1 and "folds" not in report
    if modality == "fusion":
        assert m["congruence_auc"] > 0.6 and {
            "face_emotion_pred",
            "voice_emotion_pred",
            "congruence_prob",
            "congruence_prob_raw",
            "prob_calm",
            "raw_prob_calm",
        } <= set(df)
    else:
        assert "congruence_prob" not in df
    heads = {
        "fusion": {"emotion", "face_emotion", "voice_emotion"},
        "audio": {"emotion", "voice_emotion"},
        "video": {"emotion", "face_emotion"},
    }
    assert set(report["calibration"]["temperatures"]) == heads[modality]
    assert load_calibration(ckpt).to_json() == report["calibration"]  # train.json = checkpoint


def test_calibration_is_fitted_on_validation_pairs_and_evaluate_uses_its_threshold(
    ravdess_like, tmp_path
):
    ckpt, report, _ = run(ravdess_like, "fusion", tmp_path)
    feats, proc = ravdess_like / "features", ravdess_like / "processed"
    cal = load_calibration(ckpt)
    assert cal.rule == "balanced_accuracy" and cal.platt is not None
    frames, _ = predict_av(ckpt, feats, proc, splits=("val", "test"))
    val = frames["val"]
    assert cal.fitted_on["congruence"] == len(val) == report["pairs"]["val"]
    # the stored threshold is the best balanced accuracy on the calibrated validation scores
    assert cal.threshold == pytest.approx(
        choose_threshold(
            val.congruence_prob.to_numpy(), val.congruent.to_numpy(), "balanced_accuracy"
        )  # fmt: skip
    )
    test = frames["test"]
    assert (test.congruence_pred == (test.congruence_prob >= cal.threshold)).all()
    assert (test.congruence_threshold == cal.threshold).all()
    # ... and Platt scaling lowers the validation NLL it was fitted to
    nll = [log_loss(val.congruent, val[c], labels=[0, 1])
           for c in ("congruence_prob", "congruence_prob_raw")]  # fmt: skip
    assert nll[0] <= nll[1] + 1e-9
    plots = tmp_path / "plots"
    for sub in ("av", "figures"):
        (plots / sub).mkdir(parents=True)
    result = evaluate_av_model("fusion", "ravdess", ckpt, feats, proc, plots)["test"]
    assert result["congruence_threshold"] == pytest.approx(cal.threshold, abs=1e-6)
    expected = av_test_metrics(test, list(range(8)))
    for key in ("congruence_accuracy", "congruence_f1", "congruence_accuracy_raw",
                "congruence_ece", "congruence_ece_raw", "congruence_brier",
                "congruence_brier_raw", "emotion_ece", "emotion_ece_raw", "emotion_brier",
                "emotion_brier_raw"):  # fmt: skip
        assert result[key] == pytest.approx(expected[key], abs=1e-6), key
    assert (plots / "figures/reliability_fusion_ravdess.png").stat().st_size > 0


def test_predict_refuses_features_the_model_was_not_trained_on(ravdess_like, tmp_path):
    ckpt, _, _ = run(ravdess_like, "audio", tmp_path, train=PARAMS["train"] | {"epochs": 1})
    other = write_fixture(tmp_path / "other")
    feats = other / "features"
    (feats / "wav2vec2_fixture.h5").rename(feats / "wav2vec2_ravdess.h5")
    (feats / "videomae_fixture.h5").rename(feats / "videomae_ravdess.h5")
    import h5py

    with h5py.File(feats / "wav2vec2_ravdess.h5", "a") as f:
        f.attrs["config_hash"] = "changed"
    with pytest.raises(StaleCacheError, match="attribute 'config_hash' is 'changed'"):
        predict_av(ckpt, feats, ravdess_like / "processed")


def test_all_folds_trains_a_model_per_fold_and_evaluate_scores_them(ravdess_like, tmp_path):
    ckpt, report, _ = run(
        ravdess_like, "video", tmp_path, folds="all", train=PARAMS["train"] | {"epochs": 8}
    )
    assert (ckpt / "fold1/model.pt").is_file() and not (ckpt / "fold0").exists()
    assert not (ckpt / "cv.json").exists()  # training never scores a test fold
    assert set(report["folds"]) == {"fold0", "fold1", "fold2"}
    assert report["folds"]["fold0"] == report["val"]
    fold2 = json.loads((ckpt / "fold2/train.json").read_text())
    assert fold2["test_fold"] == 2 and report["folds"]["fold2"] == fold2["val"]
    plots = tmp_path / "plots"
    for sub in ("av", "figures"):
        (plots / sub).mkdir(parents=True)
    feats, proc = ravdess_like / "features", ravdess_like / "processed"
    result = evaluate_av_model("video", "ravdess", ckpt, feats, proc, plots)
    cv = json.loads((plots / "av/video_ravdess_cv.json").read_text())
    assert cv["folds"] == 3 and set(cv["per_fold"]) == {"fold0", "fold1", "fold2"}
    for k in range(3):
        frames, prov = predict_av(ckpt / f"fold{k}" if k else ckpt, feats, proc)
        assert prov["test_fold"] == k
        assert (
            cv["per_fold"][f"fold{k}"]["accuracy"]
            == av_test_metrics(frames["test"], list(range(8)))["accuracy"]
        )
    accs = [f["accuracy"] for f in cv["per_fold"].values()]
    assert cv["accuracy_mean"] == pytest.approx(sum(accs) / 3)
    assert result["cv"]["accuracy_mean"] == pytest.approx(cv["accuracy_mean"], abs=1e-6)
    assert "per_fold" not in result["cv"] and result["test"]["accuracy"] == pytest.approx(
        cv["per_fold"]["fold0"]["accuracy"], abs=1e-6
    )
    for k in range(3):  # every fold's checkpoint is calibrated on its own validation fold
        fold_report = json.loads((ckpt / (f"fold{k}" if k else "") / "train.json").read_text())
        assert fold_report["calibration"]["fitted_on"]["emotion"] > 0
    assert {"emotion_ece_mean", "emotion_ece_raw_mean", "emotion_brier_mean"} <= set(result["cv"])


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"folds": "some"}, r"train_multimodal.folds': Input should be 'configured' or 'all'"),
        ({"model": PARAMS["model"] | {"hiden": 3}}, "unknown key 'train_multimodal.model.hiden'"),
        ({"train": {"epochs": 3}}, "missing key 'train_multimodal.train.batch_size'"),
        (
            {"train": PARAMS["train"] | {"lr_max": 1}},
            "unknown key 'train_multimodal.train.lr_max'",
        ),
        ({"loss": {"balance": "sampler"}}, "train_multimodal.loss.balance'"),
        ({"fusion": PARAMS["fusion"] | {"fusion": "sum"}}, "train_multimodal.fusion.fusion'"),
        ({"fusion": {"w_emotion": 1.0}}, "missing key 'train_multimodal.fusion.w_modality'"),
        ({"fusoin": {}}, "unknown key 'train_multimodal.fusoin'"),
    ],
)
def test_bad_params_fail_by_name(over, message):
    with pytest.raises(ConfigError, match=message):
        stage_config(PARAMS | over, "fusion")


def test_a_model_reads_its_own_sub_section_and_not_the_others():
    broken = PARAMS | {"audio": {"w_emotion": "x"}, "video": {}}
    cfg, own = stage_config(broken, "fusion")
    assert isinstance(own, FusionOwnParams) and own.w_congruence == PARAMS["fusion"]["w_congruence"]
    cfg, own = stage_config(PARAMS | {"fusion": {}, "video": {}}, "audio")
    assert own == BaselineOwnParams(classifier="network", w_emotion=1.0)
    assert cfg.model.hidden == 64
    with pytest.raises(ConfigError, match="'train_multimodal.video' must be a mapping"):
        stage_config({k: v for k, v in PARAMS.items() if k != "video"}, "video")


def test_each_model_weighs_only_the_heads_it_has():
    _, fusion = stage_config(PARAMS, "fusion")
    assert loss_terms("fusion", fusion) == {
        "emotion": 1.0, "face_emotion": 0.5, "voice_emotion": 0.5, "congruence": 0.5
    }  # fmt: skip
    _, audio = stage_config(PARAMS | {"audio": {"classifier": "network", "w_emotion": 2.0}},
                            "audio")  # fmt: skip
    assert loss_terms("audio", audio) == {"voice_emotion": 2.0}
    _, video = stage_config(PARAMS, "video")
    assert loss_terms("video", video) == {"face_emotion": 1.0}


def test_the_shipped_params_build_every_models_config():
    from affectpipe.config import load_params
    from tests.pipeline_repo import REPO

    values = load_params(REPO / "params.yaml")["train_multimodal"]
    for modality in ("fusion", "audio", "video"):
        cfg, _ = stage_config(values, modality)
        assert cfg.model.hidden == values["model"]["hidden"] and cfg.folds == values["folds"]
        for key in values:  # deleting any line the model reads is an error naming the key
            if key in ("fusion", "audio", "video") and key != modality:
                continue
            less = {k: v for k, v in values.items() if k != key}
            with pytest.raises(ConfigError, match=f"'train_multimodal.{key}'"):
                stage_config(less, modality)


def test_stage_script_refuses_bad_params_in_one_line(tmp_path):
    params = {"seed": 0, "train_multimodal": PARAMS | {"folds": "every"}, "preprocess": PAIRS,
              "extract": FIXTURE_EXTRACT}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    paths = [f"--{o}" if i % 2 == 0 else str(tmp_path / o) for o in
             ("processed-dir", "features-dir", "ckpt-dir", "live-dir") for i in (0, 1)]  # fmt: skip
    args = ["audio", "ravdess", *paths, "--params", str(tmp_path / "params.yaml")]
    result = CliRunner().invoke(stage().app, args)
    assert result.exit_code == 1 and "train_multimodal.folds" in result.output


def test_checkpoint_without_projector_and_head_options_loads_as_the_mlp_variant(tmp_path):
    from dataclasses import asdict

    from affectpipe.models.checkpoint import save_checkpoint
    from affectpipe.models.load import load_av_model
    from affectpipe.models.multimodal import AVEmotionModel
    from tests.test_multimodal_model import config

    cfg = config(face_dim=6, voice_dim=5, hidden=8, projector="mlp", congruence="mlp")
    old = {k: v for k, v in asdict(cfg).items() if k not in ("projector", "congruence")}
    save_checkpoint(tmp_path, AVEmotionModel(cfg).state_dict(), old, {}, 0, {})
    model, _ = load_av_model(tmp_path)
    assert (model.cfg.projector, model.cfg.congruence) == ("mlp", "mlp")


@pytest.mark.parametrize("modality", ["fusion", "audio", "video"])
def test_a_new_checkpoint_records_its_config_and_loads_it_back(tmp_path, modality):
    from dataclasses import asdict

    from affectpipe.models.checkpoint import load_checkpoint, save_checkpoint
    from affectpipe.models.load import load_av_model
    from affectpipe.models.multimodal import AVEmotionModel
    from affectpipe.train.multimodal import model_config

    cfg, own = stage_config(PARAMS, modality)
    built = model_config(cfg, own, modality, 6, 5, [0, 2, 3], 3)
    save_checkpoint(tmp_path, AVEmotionModel(built).state_dict(), asdict(built), {}, 0, {})
    model, payload = load_av_model(tmp_path)
    assert model.cfg == built and payload["config"] == asdict(built)
    assert (built.fusion is None) == (modality != "fusion")
    assert load_checkpoint(tmp_path)["config"]["attention_heads"] == (
        PARAMS["fusion"]["attention_heads"] if modality == "fusion" else None
    )


def test_an_older_baseline_checkpoint_with_fusion_keys_loads_without_them(tmp_path):
    from dataclasses import asdict

    from affectpipe.models.checkpoint import save_checkpoint
    from affectpipe.models.load import load_av_model
    from affectpipe.models.multimodal import AVEmotionModel
    from tests.test_multimodal_model import config

    cfg = config(modality="audio", face_dim=6, voice_dim=5, hidden=8)
    old = asdict(cfg) | {"fusion": "concat", "congruence": "agreement", "attention_heads": 4}
    save_checkpoint(tmp_path, AVEmotionModel(cfg).state_dict(), old, {}, 0, {})
    model, _ = load_av_model(tmp_path)
    assert model.cfg == cfg


def test_a_linear_model_on_learned_voice_layers_with_speaker_norm_trains_and_evaluates(tmp_path):
    """Logistic regression on a layered voice store whose layer 1 alone carries the emotion:
    the learned layer weights favour it, are saved in the checkpoint and read back by
    `predict_av`; inputs are normalised per speaker, and the model is calibrated."""
    import torch

    from affectpipe.models.load import load_av_model

    root = write_fixture(tmp_path / "fx", actors=9, folds=3, voice_snr=1.0, voice_layers=3)
    for name in ("videomae", "wav2vec2"):
        (root / f"features/{name}_fixture.h5").rename(root / f"features/{name}_ravdess.h5")
    over = {"audio": {"classifier": "linear", "w_emotion": 1.0},
            "model": PARAMS["model"] | {"speaker_norm": "standardize"}}  # fmt: skip
    ckpt, report, _ = run(root, "audio", tmp_path, **over)
    model, payload = load_av_model(ckpt)
    assert payload["config"]["classifier"] == "linear"
    assert payload["config"]["voice_layers"] == {"mode": "weighted", "layers": [0, 1, 2]}
    assert [type(m) for m in model.modules() if isinstance(m, torch.nn.Linear)] == [torch.nn.Linear]
    weights = model.layer_weights()
    assert report["voice_layer_weights"] == pytest.approx(weights)
    assert max(weights) == weights[1] and weights[1] > 0.4, weights
    assert model.voice_global_std.shape == (3, 24) and model.voice_global_std.min() > 0
    frames, _ = predict_av(ckpt, root / "features", root / "processed")
    m = av_test_metrics(frames["test"], list(range(8)))
    assert m["uar"] > 3 * m["chance_uar"], m
    assert set(report["calibration"]["temperatures"]) == {"emotion", "voice_emotion"}


@pytest.mark.parametrize(("over", "message"), [
    ({"voice_layers": {"mode": "single", "layers": [5]}}, r"wav2vec2_ravdess.h5.*do not fit"),
])  # fmt: skip
def test_voice_layers_outside_the_store_name_the_file(tmp_path, over, message):
    root = write_fixture(tmp_path / "fx", actors=6, folds=3, voice_layers=3)
    for name in ("videomae", "wav2vec2"):
        (root / f"features/{name}_fixture.h5").rename(root / f"features/{name}_ravdess.h5")
    params = {"seed": 0, "train_multimodal": PARAMS | over, "preprocess": PAIRS,
              "extract": FIXTURE_EXTRACT}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = ["audio", "ravdess", "--processed-dir", str(root / "processed"),
            "--features-dir", str(root / "features"), "--ckpt-dir", str(tmp_path / "c"),
            "--live-dir", str(tmp_path / "l"),
            "--params", str(tmp_path / "params.yaml")]  # fmt: skip
    result = CliRunner().invoke(stage().app, args)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert re.search(message, result.output), result.output
