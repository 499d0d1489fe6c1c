"""openSMILE feature sets as audio backbones: the stored functionals are openSMILE's own, the store
carries their provenance and refuses another feature set, bad audio follows `bad_input`, and the
audio model trains on the store like on any embedding."""

from __future__ import annotations

import json

import numpy as np
import opensmile
import pandas as pd
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from affectpipe.av_inference import predict_av
from affectpipe.compute import ComputeConfig
from affectpipe.data.av_dataset import load_clip_embeddings
from affectpipe.features import smile as S
from affectpipe.features.extract import extract_features
from affectpipe.features.sources import av_plan
from affectpipe.features.store import StaleCacheError, open_features
from affectpipe.metrics import av_test_metrics
from affectpipe.problems import InputProblem, ProblemLog
from tests.test_multimodal_data import FIXTURE_EXTRACT, write_fixture
from tests.test_multimodal_train import PAIRS, PARAMS, stage

CPU = ComputeConfig(device="cpu", processes=1, launcher="accelerate", dataloader_workers=0)
SR = 16_000


def voice(f0: float, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone at `f0` with a slow loudness swell, plus noise: something with a pitch."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3))
    swell = 0.5 + 0.5 * np.sin(np.pi * t / seconds)
    noise = np.random.default_rng(seed).normal(scale=0.02, size=len(t))
    return (0.2 * swell * tone + noise).astype(np.float32)


def processed(root, waves: dict[str, np.ndarray]) -> None:
    """A processed folder: clips.csv and one float32 16 kHz WAV per clip."""
    (root / "audio").mkdir(parents=True)
    rows = []
    for clip_id, wave in waves.items():
        sf.write(root / "audio" / f"{clip_id}.wav", wave, SR, subtype="FLOAT")
        rows.append({"clip_id": clip_id, "actor": "01", "emotion": 0, "split": "train",
                     "has_audio": 1, "audio_path": f"audio/{clip_id}.wav"})  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "clips.csv", index=False)


def cfg(feature_set: str = "eGeMAPSv02", batch_size: int = 2) -> S.EgemapsConfig:
    return S.EgemapsConfig(feature_set=feature_set, batch_size=batch_size)


def test_stored_functionals_are_opensmiles_own_of_the_same_signal(tmp_path):
    waves = {"a": voice(140.0), "b": voice(220.0, seed=1)}
    processed(tmp_path / "in", waves)
    out = tmp_path / "egemaps_ravdess.h5"
    report, _ = extract_features("egemaps", "ravdess", tmp_path / "in", out, cfg(), CPU)
    direct = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    with open_features(out) as reader:
        assert reader.clip_ids == ["a", "b"] and reader.dim == 88
        for clip_id, wave in waves.items():
            want = direct.process_signal(wave, SR).to_numpy(np.float32)
            np.testing.assert_array_equal(reader[clip_id], want)
        attrs = reader.attrs
    prep = json.loads(attrs["preprocessing"])
    assert (attrs["backbone"], attrs["spec"], attrs["dim"]) == ("egemaps", "eGeMAPSv02", 88)
    assert prep["opensmile"] == opensmile.__version__ and prep["sample_rate"] == SR
    assert attrs["config_hash"] == S.config_hash("eGeMAPSv02")
    assert report["items"] == 2 and report["skipped"] == []


def test_the_store_is_byte_identical_whatever_the_batching(tmp_path):
    processed(tmp_path / "in", {f"c{i}": voice(120.0 + 20 * i, 0.5, i) for i in range(3)})
    files = []
    for batch_size in (1, 3):
        out = tmp_path / f"{batch_size}" / "egemaps_ravdess.h5"
        extract_features(
            "egemaps", "ravdess", tmp_path / "in", out, cfg(batch_size=batch_size), CPU
        )
        files.append(out.read_bytes())
    assert files[0] == files[1]


def test_the_config_hash_covers_the_included_files():
    files = S.config_files("eGeMAPSv02")
    assert files[0].name == "eGeMAPSv02.conf" and len(files) > 1
    assert S.config_hash("eGeMAPSv02") != S.config_hash("eGeMAPSv01b")


def test_bad_audio_is_skipped_with_its_reason_or_stops_a_strict_run(tmp_path):
    bad = voice(150.0)
    bad[100] = np.nan
    processed(tmp_path / "in", {"bad": bad, "good": voice(150.0), "short": voice(150.0, 0.03)})
    out = tmp_path / "egemaps_ravdess.h5"
    report, _ = extract_features("egemaps", "ravdess", tmp_path / "in", out, cfg(), CPU, "skip")
    reasons = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"bad.wav", "short.wav"}
    assert "1 non-finite sample" in reasons["bad.wav"]
    assert "not finite" in reasons["short.wav"] and "480 samples" in reasons["short.wav"]
    with open_features(out) as reader:
        assert reader.clip_ids == ["good"]
    with pytest.raises(InputProblem, match="bad.wav: 1 non-finite sample"):
        extract_features(
            "egemaps", "ravdess", tmp_path / "in", out, cfg(batch_size=3), CPU, "strict"
        )


def test_compute_functionals_reports_a_problem_per_clip_in_one_process_or_several(tmp_path):
    processed(tmp_path / "in", {"a": voice(130.0, 0.5), "b": voice(180.0, 0.02)})
    results = []
    for workers in (1, 2):
        log = ProblemLog("skip")
        plan = av_plan(tmp_path / "in", "ravdess", "audio", log)
        rows = S.compute_functionals(plan, "eGeMAPSv02", 1, log, workers)
        assert list(rows) == ["a"] and len(log.skipped) == 1
        results.append(rows["a"])
    np.testing.assert_array_equal(*results)


def test_a_store_of_another_feature_set_is_refused(tmp_path):
    processed(tmp_path / "in", {"a": voice(150.0, 0.5)})
    out = tmp_path / "egemaps_ravdess.h5"
    extract_features("egemaps", "ravdess", tmp_path / "in", out, cfg(), CPU)
    with open_features(out) as reader:
        expect = {k: reader.attrs[k] for k in ("backbone", "spec", "config_hash")}
    extract_features("egemaps", "ravdess", tmp_path / "in", out, cfg("eGeMAPSv01b"), CPU)
    with pytest.raises(StaleCacheError, match="attribute 'spec' is 'eGeMAPSv01b'"):
        load_clip_embeddings(out, {"a"}, ProblemLog("strict"), expect)


@pytest.fixture(scope="module")
def pitched_ravdess(tmp_path_factory):
    """The multimodal fixture, with each clip's voice a tone whose pitch says its emotion."""
    root = write_fixture(tmp_path_factory.mktemp("fx"), actors=6, folds=3)
    (root / "features/videomae_fixture.h5").rename(root / "features/videomae_ravdess.h5")
    clips = pd.read_csv(root / "processed/clips.csv")
    waves = {
        r.clip_id: voice(110.0 * 1.25 ** (r.emotion) * (1 + 0.03 * int(r.actor[1:])), 0.5, i)
        for i, r in enumerate(clips.itertuples())
    }
    processed(root / "audio_only", waves)
    (root / "audio_only/audio").rename(root / "processed/audio")
    clips.assign(audio_path=[f"audio/{c}.wav" for c in clips.clip_id]).to_csv(
        root / "processed/clips.csv", index=False
    )
    out = root / "features/egemaps_ravdess.h5"
    extract_features("egemaps", "ravdess", root / "processed", out, cfg(batch_size=16), CPU)
    return root


def test_the_audio_model_trains_on_an_egemaps_store_and_is_checked_against_it(
    pitched_ravdess, tmp_path
):
    root = pitched_ravdess
    extract = FIXTURE_EXTRACT | {"egemaps": {"feature_set": "eGeMAPSv02", "batch_size": 16}}
    params = {"seed": 0, "train_multimodal": PARAMS, "preprocess": PAIRS, "extract": extract}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    ckpt = tmp_path / "audio_egemaps"
    args = ["audio", "ravdess", "--voice-features", "egemaps",
            "--processed-dir", str(root / "processed"), "--features-dir", str(root / "features"),
            "--ckpt-dir", str(ckpt), "--live-dir", str(tmp_path / "live"),
            "--params", str(tmp_path / "params.yaml")]  # fmt: skip
    result = CliRunner().invoke(stage().app, args)
    assert result.exit_code == 0, result.output
    frames, prov = predict_av(ckpt, root / "features", root / "processed")
    assert prov["voice_file"] == "egemaps_ravdess.h5"
    assert prov["voice_features"]["spec"] == "eGeMAPSv02"
    m = av_test_metrics(frames["test"], list(range(8)))
    assert m["uar"] > 2 * m["chance_uar"], m
    store = root / "features/egemaps_ravdess.h5"
    kept = store.read_bytes()
    try:
        extract_features("egemaps", "ravdess", root / "processed", store, cfg("eGeMAPSv01b"), CPU)
        with pytest.raises(StaleCacheError, match="egemaps_ravdess.h5: stale"):
            predict_av(ckpt, root / "features", root / "processed")
    finally:
        store.write_bytes(kept)


def test_the_results_label_a_model_on_another_voice_store_by_its_store(tmp_path):
    from affectpipe.results import model_label, render

    assert model_label("audio_egemaps") == "audio (eGeMAPS)" and model_label("audio") == "audio"
    scores = {"test": {"accuracy": 0.5}, "cv": {"folds": 6, "accuracy_mean": 0.4}}
    av = {"av": {"audio": {"ravdess": scores}, "audio_egemaps": {"ravdess": scores}}}
    (tmp_path / "av.json").write_text(json.dumps(av))
    table = render(tmp_path)
    assert "| audio (eGeMAPS) / ravdess | 0.500 |" in table
    assert "| audio (eGeMAPS) / ravdess | 6 | 0.400 ± " in table
