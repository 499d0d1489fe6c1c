"""`affectpipe predict`: per-video records on generated videos, folders, bad files, the CLI."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from affectpipe.calibration import (
    Calibration,
    congruence_threshold,
    platt_scale,
    scale_temperature,
)
from affectpipe.cli import MAX_SIDE, THRESHOLD, VA_STRIDE, app
from affectpipe.config import ConfigError
from affectpipe.data.av import ClipSettings
from affectpipe.data.labels import EMOTIONS
from affectpipe.data.media import write_video
from affectpipe.features.backbones import load_backbone
from affectpipe.models.checkpoint import add_to_checkpoint, load_checkpoint, save_checkpoint
from affectpipe.models.load import ProvenanceMismatch
from affectpipe.models.multimodal import AVEmotionModel, AVModelConfig
from affectpipe.models.va import VAModel
from affectpipe.predict import (
    PredictConfig,
    Predictor,
    predict_paths,
    run_many,
    settings_from_params,
)
from affectpipe.problems import InputProblem
from affectpipe.va_selection import served_checkpoint
from tests.face_scenes import paste_head
from tests.pipeline_repo import REPO
from tests.va_configs import PARAMS, model_config, window

TOP_KEYS = {
    "file", "duration_s", "fps", "width", "height", "has_audio", "time_base", "frames",
    "va_windows", "valence_mean",
    "arousal_mean", "emotion", "face_emotion", "voice_emotion", "congruence", "face",
    "speaker_norm", "models", "unavailable", "notes",
}  # fmt: skip


def _entry(kind: str) -> tuple[dict, int]:
    b = load_backbone(kind, "tiny")
    entry = {"backbone": kind, "spec": "tiny", "config_hash": b.config_hash,
             "weights_hash": b.weights_hash, "dim": b.dim}  # fmt: skip
    return entry, b.dim


def build_tiny_models(
    root: Path,
    av_models=("fusion",),
    va: bool = True,
    clip_hash: str | None = None,
    recorded: dict | None = None,
    va_window: dict | None = None,
    speaker_norm: str = "none",
    voice_layers: dict | None = None,
) -> Path:
    """Checkpoints in the layout the training stages write, from randomly initialised models.

    `recorded`: {"afewva": ..., "ravdess": ..., "layer": n}, the preprocessing settings and
    the one wav2vec2 layer of an older store the features (and so the checkpoints) record; by
    default no settings and a layered voice store (every hidden state), read as `voice_layers`
    says (default: learned weights over all of them).
    `va_window`: the VA checkpoint's window (`length`, `eval_stride`; 6 and 3 by default).
    """
    torch.manual_seed(0)
    clip, d_clip = _entry("clip")
    if clip_hash:
        clip["config_hash"] = clip_hash
    face, d_face = _entry("videomae")
    voice, d_voice = _entry("wav2vec2")
    n_layers = load_backbone("wav2vec2", "tiny").model.config.num_hidden_layers + 1
    voice["preprocessing"] = json.dumps({"hidden_states": "all"})
    layered = {
        "voice_n_layers": n_layers,
        "voice_layers": voice_layers or {"mode": "weighted", "layers": list(range(n_layers))},
    }
    if recorded:
        clip["source_settings"] = json.dumps(recorded["afewva"])
        face["source_settings"] = voice["source_settings"] = json.dumps(recorded["ravdess"])
        voice["preprocessing"] = json.dumps({"layer": recorded["layer"]})
        layered = {"voice_n_layers": None, "voice_layers": None}
    if va:
        cfg = model_config("cached", d_clip, proj_hidden=32, embed_dim=16,
                            reg_hidden=8, tf_ff=32)  # fmt: skip
        shape = va_window or {"length": 6, "eval_stride": 3}
        config = {"model": cfg.record(), "window": asdict(window(**shape))}
        save_checkpoint(served_checkpoint(root, "cached"), VAModel(cfg).checkpoint_state(),
                        config, {"inputs": clip, "stage": "finetune"}, 0, {})  # fmt: skip
    for modality in av_models:
        own = {"fusion": "concat", "congruence": "agreement", "attention_heads": 4}
        if modality != "fusion":  # a baseline has no fusion keys
            own = dict.fromkeys(own)
        cfg = AVModelConfig(face_dim=d_face, voice_dim=d_voice, hidden=16, modality=modality,
                            projector="linear", dropout=0.1, classes=list(range(8)),
                            classifier="network", speaker_norm=speaker_norm,
                            **(layered if modality != "video" else
                               {"voice_n_layers": None, "voice_layers": None}),
                            **own)  # fmt: skip
        prov = {"dataset": "ravdess", "modality": modality, "face_features": face,
                "voice_features": voice}  # fmt: skip
        model = AVEmotionModel(cfg)
        if model.layer_weights() is not None and cfg.voice_layers["mode"] == "weighted":
            with torch.no_grad():  # trained weights: not the even mix a fresh model starts with
                model.voice_proj.mix.logits.copy_(torch.linspace(-1, 2, n_layers))
        save_checkpoint(root / "multimodal" / f"{modality}_ravdess",
                        model.state_dict(), asdict(cfg), prov, 0, {})  # fmt: skip
    return root


def make_predictor(models_dir: Path, **changes) -> Predictor:
    """A CPU predictor with the CLI's defaults but no selection record (the first trained VA
    variant serves); preprocessing as params.yaml has it (the tiny checkpoints record none)."""
    cfg = PredictConfig(**{"models_dir": models_dir, "va_variant": "best",
                           "va_selection": models_dir / "no-selection.json",
                           "av_dataset": "ravdess", "device": "cpu", "va_stride": VA_STRIDE,
                           "max_side": MAX_SIDE, "threshold": THRESHOLD, **changes})  # fmt: skip
    return Predictor(cfg, settings_from_params(PARAMS, cfg.av_dataset))


def make_video(path: Path, n: int = 30, size=(64, 48), fps: float = 15, audio: bool = True,
               seed: int = 0, face: bool = True) -> Path:  # fmt: skip
    """A moving-noise video (+ a 220 Hz tone in 3 Hz syllables) in the container `path` names;
    with `face`, a real face (the astronaut's head, `tests.face_scenes`) fills most of its
    height."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, 2 * i, axis=1) for i in range(n)])
    if face:
        side = int(0.9 * min(w, h))
        for frame in frames:
            paste_head(frame, (w - side) // 2, h - side, side)
    wave = None
    if audio:
        t = np.arange(int(16000 * n / fps)) / 16000
        syllables = np.sin(2 * np.pi * 3 * t) > 0  # on/off like speech: the speech test's cue
        wave = (0.3 * np.sin(2 * np.pi * 220 * t) * syllables).astype(np.float32)
    write_video(path, frames, fps, wave, 16000)
    return path


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return build_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def predictor(models_dir) -> Predictor:
    return make_predictor(models_dir)


def check_probabilities(block: dict) -> None:
    probs = block["probabilities"]
    assert set(probs) == set(EMOTIONS)
    assert all(0.0 <= p <= 1.0 for p in probs.values())
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert block["label"] == max(probs, key=probs.get)


def check_record(rec: dict) -> None:
    """Field names, types and ranges of one record."""
    assert set(rec) == TOP_KEYS
    assert isinstance(rec["file"], str) and rec["duration_s"] > 0 and rec["fps"] > 0
    assert isinstance(rec["has_audio"], bool)
    times = [f["t"] for f in rec["frames"]]
    assert times == sorted(times) and times[:1] in ([], [0.0])
    assert all(t <= rec["duration_s"] for t in times)
    va = rec["time_base"]["va"]
    if rec["frames"]:  # consecutive frames at the VA model's rate, windows of them
        assert times == pytest.approx([k / va["fps"] for k in range(len(times))], abs=1e-4)
        span = min(va["window_frames"], len(times)) / va["fps"]
        for w in rec["va_windows"]:
            assert w["end"] - w["start"] == pytest.approx(span, abs=2e-4)
            assert -1.0 <= w["valence"] <= 1.0 and -1.0 <= w["arousal"] <= 1.0
    for f in rec["frames"]:
        assert set(f) == {"t", "valence", "arousal"}
        assert -1.0 <= f["valence"] <= 1.0 and -1.0 <= f["arousal"] <= 1.0
    if rec["frames"]:
        mean = np.mean([f["valence"] for f in rec["frames"]])
        assert rec["valence_mean"] == pytest.approx(mean, abs=1e-5)
    else:
        assert rec["valence_mean"] is None and rec["arousal_mean"] is None
    for key in ("emotion", "face_emotion", "voice_emotion"):
        if rec[key] is not None:
            check_probabilities(rec[key])
    if rec["congruence"] is not None:
        c = rec["congruence"]
        assert set(c) == {"probability", "verdict", "threshold", "calibrated"}
        assert 0.0 <= c["probability"] <= 1.0 and 0.0 < c["threshold"] < 1.0
        assert c["verdict"] == ("congruent" if c["probability"] >= c["threshold"]
                                else "incongruent")  # fmt: skip
    for block in rec["face"].values():
        if block is not None:
            assert set(block) == {"method", "used", "detector", "coverage", "frames"}
            assert block["coverage"] is None or 0.0 <= block["coverage"] <= 1.0
            assert all(len(f["box"]) == 4 for f in block["frames"])
    for u in rec["unavailable"]:
        assert set(u) == {"field", "reason"} and u["field"] in TOP_KEYS and u["reason"]
    json.dumps(rec, allow_nan=False)


def test_video_with_audio_gets_every_field(predictor, tmp_path):
    rec = predictor(make_video(tmp_path / "a.mp4", n=30, fps=15))
    check_record(rec)
    assert rec["unavailable"] == []
    assert rec["has_audio"] and rec["duration_s"] == pytest.approx(2.0, abs=0.05)
    # resampled to the VA model's 25 fps up to the last frame (29 / 15 s)
    assert [f["t"] for f in rec["frames"]] == [round(k * 0.04, 4) for k in range(49)]
    assert all(rec[k] is not None for k in ("emotion", "face_emotion", "voice_emotion",
                                            "congruence"))  # fmt: skip


def test_video_without_audio_nulls_voice_fields_with_reason(predictor, tmp_path):
    rec = predictor(make_video(tmp_path / "silent.mp4", audio=False))
    check_record(rec)
    assert rec["has_audio"] is False
    assert rec["face_emotion"] is not None and rec["frames"]
    for key in ("emotion", "voice_emotion", "congruence"):
        assert rec[key] is None
    reasons = {u["field"]: u["reason"] for u in rec["unavailable"]}
    assert set(reasons) == {"emotion", "voice_emotion", "congruence"}
    assert all("no audio track" in r for r in reasons.values())


@pytest.mark.parametrize(
    ("name", "size", "fps", "audio"),
    [
        ("odd.mov", (97, 71), 13, True),
        ("odd.avi", (97, 71), 13, True),
        ("clip.flv", (64, 48), 30, True),
        ("clip.webm", (64, 48), 24, True),
        ("tiny.mkv", (33, 17), 7.5, False),
    ],
)
def test_any_container_size_and_frame_rate(predictor, tmp_path, name, size, fps, audio):
    n = 26
    rec = predictor(make_video(tmp_path / name, n=n, size=size, fps=fps, audio=audio))
    check_record(rec)
    assert (rec["width"], rec["height"]) == size
    assert rec["fps"] == pytest.approx(fps, rel=1e-3)
    assert rec["duration_s"] == pytest.approx(n / fps, abs=0.1)
    sampled = int(np.floor((n - 1) / fps * 25)) + 1  # 25 fps, the VA rate
    assert len(rec["face"]["va"]["frames"]) == sampled
    found = size != (33, 17)  # a 15-pixel face is below what the detector finds
    assert len(rec["frames"]) == (sampled if found else 0)
    assert (rec["face_emotion"] is not None) == found
    assert (rec["voice_emotion"] is not None) == audio


def test_video_without_a_face_marks_face_fields_unavailable_and_keeps_the_voice(
    predictor, tmp_path
):
    rec = predictor(make_video(tmp_path / "noface.mp4", face=False))
    check_record(rec)
    assert rec["voice_emotion"] is not None
    for part in ("va", "av"):
        assert rec["face"][part]["coverage"] == 0.0 and rec["face"][part]["used"] == "center"
    reasons = {u["field"]: u["reason"] for u in rec["unavailable"]}
    assert set(reasons) == {"frames", "va_windows", "valence_mean", "arousal_mean", "emotion",
                            "face_emotion", "congruence"}  # fmt: skip
    assert all("no face found" in r for r in reasons.values())


def test_face_boxes_are_reported_per_sampled_frame_in_video_pixels(predictor, tmp_path):
    rec = predictor(make_video(tmp_path / "a.mp4", size=(160, 128)))
    side = int(0.9 * 128)
    face = paste_head(np.zeros((128, 160, 3), np.uint8), (160 - side) // 2, 128 - side, side)
    for part in ("va", "av"):
        block = rec["face"][part]
        assert block["method"] == block["used"] == "face" and block["coverage"] == 1.0
        for f in block["frames"]:
            x0, y0, x1, y1 = f["box"]
            assert f["detected"] and x0 < face[0] and y0 < face[1]
            assert x1 > face[2] and y1 > face[3]  # the face is inside its box
    assert [f["t"] for f in rec["face"]["va"]["frames"]] == [f["t"] for f in rec["frames"]]


def test_folder_to_jsonl_keeps_going_past_a_corrupt_file(predictor, tmp_path):
    folder = tmp_path / "in"
    make_video(folder / "a.mp4")
    make_video(folder / "sub" / "b.avi", size=(97, 71), fps=13)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "preds.jsonl"
    outcomes = predict_paths(predictor, folder, out, progress=False)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [Path(line["file"]).name for line in lines] == ["a.mp4", "broken.mp4", "b.avi"]
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert set(lines[1]) == {"file", "error"} and "broken.mp4" in lines[1]["file"]
    assert "video" in lines[1]["error"]
    check_record(lines[0])
    check_record(lines[2])


def test_an_unforeseen_failure_on_one_video_is_its_error_and_the_others_go_on(tmp_path):
    def predict_one(path: Path) -> dict:
        if path.name == "b.mp4":
            raise RuntimeError("kernel size can't be greater than actual input size")
        return {"file": str(path)}

    paths = [tmp_path / n for n in ("a.mp4", "b.mp4", "c.mp4")]
    outcomes = list(run_many(predict_one, paths, progress=False))
    assert [o.record is not None for o in outcomes] == [True, False, True]
    assert outcomes[1].error == (
        "unexpected RuntimeError: kernel size can't be greater than actual input size"
    )


@pytest.mark.parametrize("err", [MemoryError(), OSError(28, "No space left on device")])
def test_errors_of_the_run_itself_stop_predict(tmp_path, err):
    def predict_one(path: Path) -> dict:
        raise err

    with pytest.raises(type(err)):
        list(run_many(predict_one, [tmp_path / "a.mp4", tmp_path / "b.mp4"], progress=False))


def test_folder_output_writes_one_json_per_video(predictor, tmp_path):
    folder = tmp_path / "in"
    make_video(folder / "x.mp4")
    make_video(folder / "x.webm")
    make_video(folder / "deep" / "y.mov", size=(97, 71), fps=13)
    out = tmp_path / "out"
    predict_paths(predictor, folder, out, progress=False)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert written == ["deep/y.mov.json", "x.mp4.json", "x.webm.json"]
    check_record(json.loads((out / "deep" / "y.mov.json").read_text()))


def test_predictions_are_deterministic(predictor, tmp_path):
    path = make_video(tmp_path / "a.mp4")
    assert predictor(path) == predictor(path)


def test_cli_prints_json_for_one_file(models_dir, tmp_path):
    video = make_video(tmp_path / "a.mp4")
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(video),
            "--models-dir",
            str(models_dir),
            "--device",
            "cpu",
            "--params",
            str(REPO / "params.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    rec = json.loads(result.stdout)
    check_record(rec)
    assert "1 of 1 video(s) predicted" in result.stderr
    # without a params file, a checkpoint that records no VA crop settings is one clear error
    args = ["predict", str(video), "--models-dir", str(models_dir), "--params", "none.yaml"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "records no VASettings" in result.stderr and "crop_size" in result.stderr


def test_cli_exit_code_1_names_the_bad_file_and_writes_the_rest(models_dir, tmp_path):
    folder = tmp_path / "in"
    make_video(folder / "good.mp4")
    (folder / "bad.flv").write_bytes(b"FLV" + b"\x01" * 64)
    out = tmp_path / "o.jsonl"
    result = CliRunner().invoke(app, ["predict", str(folder), "-o", str(out), "--models-dir",
                                      str(models_dir), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 1
    assert "failed:" in result.stderr and "bad.flv" in result.stderr
    assert "1 of 2 video(s) predicted" in result.stderr
    assert len(out.read_text().splitlines()) == 2


def test_cli_without_models_is_one_clear_error(tmp_path):
    video = make_video(tmp_path / "a.mp4")
    result = CliRunner().invoke(app, ["predict", str(video), "--models-dir", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert "no trained model under" in result.stderr and "Traceback" not in result.output


def test_missing_path_and_non_video_are_errors(predictor, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        predict_paths(predictor, tmp_path / "nope.mp4", None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no video files"):
        predict_paths(predictor, tmp_path / "empty", None)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="not a video extension"):
        predict_paths(predictor, tmp_path / "a.txt", None)


def test_backbone_hash_mismatch_is_a_clear_error(tmp_path):
    root = build_tiny_models(tmp_path / "m", av_models=(), clip_hash="0" * 64)
    with pytest.raises(ProvenanceMismatch, match="config hash 000000000000"):
        make_predictor(root)


def test_only_va_model_reports_emotion_fields_unavailable(tmp_path):
    root = build_tiny_models(tmp_path / "m", av_models=())
    rec = make_predictor(root)(make_video(tmp_path / "a.mp4"))
    check_record(rec)
    assert rec["frames"] and rec["emotion"] is None
    fields = {u["field"] for u in rec["unavailable"]}
    assert fields == {"emotion", "face_emotion", "voice_emotion", "congruence"}
    assert all("no trained model" in u["reason"] for u in rec["unavailable"])


def test_baselines_stand_in_when_there_is_no_fusion_model(tmp_path):
    root = build_tiny_models(tmp_path / "m", av_models=("video", "audio"), va=False)
    rec = make_predictor(root)(make_video(tmp_path / "a.mp4"))
    check_record(rec)
    assert rec["face_emotion"] and rec["voice_emotion"] and rec["emotion"] is None
    assert {u["field"] for u in rec["unavailable"]} == {
        "frames", "va_windows", "valence_mean", "arousal_mean", "emotion",
        "congruence"}  # fmt: skip


def test_predict_applies_the_stored_calibration_and_its_threshold(tmp_path):
    root = build_tiny_models(tmp_path / "m", va=False)
    video = make_video(tmp_path / "a.mp4")
    raw = make_predictor(root)(video)  # written before calibration existed: as the model says
    assert raw["congruence"]["threshold"] == 0.5 and raw["congruence"]["calibrated"] is False
    temps = {"emotion": 3.0, "face_emotion": 0.5, "voice_emotion": 2.0}
    p = platt_scale(np.array([raw["congruence"]["probability"]]), 2.0, 0.7)[0]
    ckpt = root / "multimodal" / "fusion_ravdess"
    for threshold, verdict in ((p - 1e-3, "congruent"), (p + 1e-3, "incongruent")):
        cal = Calibration(temps, (2.0, 0.7), threshold, "balanced_accuracy")
        add_to_checkpoint(ckpt, "calibration", cal.to_json())
        assert congruence_threshold(ckpt) == threshold  # what the CREMA-D evaluation reads
        rec = make_predictor(root)(video)
        c = rec["congruence"]
        assert c["threshold"] == pytest.approx(threshold, abs=1e-6) and c["calibrated"] is True
        assert c["probability"] == pytest.approx(p, abs=1e-5) and c["verdict"] == verdict
        for head, t in temps.items():
            before = np.array([raw[head]["probabilities"][e] for e in EMOTIONS])
            after = [rec[head]["probabilities"][e] for e in EMOTIONS]
            assert after == pytest.approx(scale_temperature(before[None], t)[0], abs=1e-4)
    given = make_predictor(root, threshold=0.999)(video)["congruence"]  # --threshold wins
    assert given["threshold"] == 0.999 and given["verdict"] == "incongruent"


def _lora_checkpoint(root: Path, scale: float) -> Path:
    """A `lora` VA checkpoint whose LoRA B matrices are `scale` (0: the adapters do nothing)."""
    torch.manual_seed(0)
    entry, dim = _entry("clip")
    cfg = model_config("lora", dim, proj_hidden=32, embed_dim=16, reg_hidden=8)
    model = VAModel(cfg, load_backbone("clip", "tiny").model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(scale)
    config = {"model": cfg.record(), "window": asdict(window(length=4, eval_stride=2))}
    save_checkpoint(
        root / "finetune" / "lora" / "fold0",
        model.checkpoint_state(),
        config,
        {"inputs": {**entry, "content": "clip_hidden_before_block"}},
        0,
        {},
    )
    return root


def test_lora_variant_runs_the_adapted_encoder(tmp_path):
    video = make_video(tmp_path / "a.mp4")
    traces = []
    for scale in (0.0, 0.5):
        root = _lora_checkpoint(tmp_path / f"m{scale}", scale)
        rec = make_predictor(root, va_variant="lora")(video)
        check_record(rec)
        assert rec["models"]["va"].endswith("finetune/lora/fold0")
        traces.append([(f["valence"], f["arousal"]) for f in rec["frames"]])
    assert traces[0] != traces[1]  # the saved adapter weights reach the encoder


def test_linear_probe_variant_serves_a_linear_map_of_the_clip_embeddings(tmp_path):
    from affectpipe.inference import VAEngine

    clip, d = _entry("clip")
    root = tmp_path / "m"
    cfg = model_config("linear_probe", d)
    model = VAModel(cfg)
    with torch.no_grad():  # a small map keeps the trace inside [-1, 1], as check_record wants
        model.regressor.linear.weight.copy_(0.05 * torch.randn(2, d))
        model.regressor.linear.bias.copy_(torch.tensor([0.1, -0.2]))
    config = {"model": cfg.record(), "window": asdict(window(length=6, eval_stride=3))}
    save_checkpoint(served_checkpoint(root, "linear_probe"), model.checkpoint_state(), config,
                    {"inputs": clip, "stage": "finetune"}, 0, {})  # fmt: skip
    video = make_video(tmp_path / "a.mp4")
    rec = make_predictor(root, va_variant="linear_probe")(video)
    check_record(rec)
    assert rec["models"]["va"].endswith("finetune/linear_probe/fold0")
    engine = VAEngine(served_checkpoint(root, "linear_probe"), torch.device("cpu"),
                      settings_from_params(PARAMS, "ravdess").va)  # fmt: skip
    assert engine.model.backbone is None and engine.backbone is not None  # CLIP embeds frames
    trace = np.array([(f["valence"], f["arousal"]) for f in rec["frames"]])
    assert trace.std(0).min() > 0  # frames differ, so a non-zero linear map moves the output


def test_engines_prepare_videos_as_the_checkpoints_record(tmp_path):
    from affectpipe.inference import AVEngine, VAEngine, VASettings

    recorded = {
        "afewva": {"crop_size": 48, "margin": 0.5},
        "ravdess": {"n_frames": 8, "frame_size": 96, "crop": "center", "sample_rate": 8000},
        "layer": 1,
    }
    root = build_tiny_models(tmp_path / "models", recorded=recorded)
    cpu = torch.device("cpu")
    params = settings_from_params(PARAMS, "ravdess")
    # what params.yaml says now differs: the checkpoint wins, params fill the rest
    va = VAEngine(served_checkpoint(root, "cached"), cpu, VASettings(crop_size=99, margin=0.1))
    assert (va.settings.crop_size, va.settings.margin) == (48, 0.5)
    clip = replace(params.clip, frame_size=200, margin=0.3)
    av = AVEngine(root / "multimodal" / "fusion_ravdess", cpu, clip)
    s = av.settings
    assert (s.n_frames, s.frame_size, s.crop, s.sample_rate) == (8, 96, "center", 8000)
    assert (s.margin, s.min_speech_s) == (0.3, params.clip.min_speech_s) and av.layer == 1
    # a checkpoint that records nothing is prepared as params.yaml says; its layered voice
    # store is embedded whole (every hidden state: layer None)
    old = build_tiny_models(tmp_path / "old")
    va = VAEngine(served_checkpoint(old, "cached"), cpu, VASettings(crop_size=99, margin=0.25))
    assert va.settings.crop_size == 99
    av = AVEngine(old / "multimodal" / "fusion_ravdess", cpu, clip)
    assert av.settings == clip and av.layer is None


def test_settings_from_params_are_the_shipped_sections():
    s = settings_from_params(PARAMS, "cremad")
    cremad = PARAMS["preprocess"]["cremad"]
    assert (cremad["frame_size"], PARAMS["preprocess"]["afewva"]["crop_size"]) == ("auto", "auto")
    resolved = {**cremad, "frame_size": 64}  # `auto`: the tiny backbones' processors' 64 px
    assert asdict(s.clip) == {f.name: resolved[f.name] for f in fields(ClipSettings)}
    assert (s.va.crop_size, s.va.margin) == (64, 0.25)
    none = settings_from_params({}, "ravdess")  # no params file: the checkpoints must record
    assert (none.va, none.clip) == (None, None)
    with pytest.raises(ConfigError, match=r"'preprocess.ravdess.crop'"):
        settings_from_params({"preprocess": {"ravdess": {**resolved, "crop": "x"}}}, "ravdess")
    with pytest.raises(ConfigError, match=r"missing section 'extract.videomae.spec'"):
        settings_from_params({"preprocess": {"ravdess": cremad}}, "ravdess")


def test_av_preprocessing_from_neither_checkpoint_nor_params_is_named(tmp_path):
    from affectpipe.inference import AVEngine

    root = build_tiny_models(tmp_path / "m", va=False)
    fusion, cpu = root / "multimodal" / "fusion_ravdess", torch.device("cpu")
    params = settings_from_params(PARAMS, "ravdess")
    with pytest.raises(ConfigError, match=r"records no ClipSettings.*'preprocess.ravdess.n_fr"):
        AVEngine(fusion, cpu, None)
    payload = load_checkpoint(fusion)  # voice features that record neither layer nor layers
    payload["provenance"]["voice_features"]["preprocessing"] = "{}"
    save_checkpoint(fusion, payload["state_dict"], payload["config"], payload["provenance"], 0,
                    {})  # fmt: skip
    with pytest.raises(InputProblem, match=r"neither which wav2vec2 layer"):
        AVEngine(fusion, cpu, params.clip)


def test_a_damaged_recorded_window_names_the_checkpoint_and_key(tmp_path):
    from affectpipe.inference import VAEngine, VASettings

    ckpt = build_tiny_models(tmp_path / "m", av_models=()) / "finetune" / "cached" / "fold0"
    payload = load_checkpoint(ckpt)
    del payload["config"]["window"]["eval_stride"]
    save_checkpoint(ckpt, payload["state_dict"], payload["config"], payload["provenance"], 0, {})
    with pytest.raises(InputProblem, match=r"model\.pt: recorded WindowConfig.*eval_stride"):
        VAEngine(ckpt, torch.device("cpu"), VASettings(crop_size=64, margin=0.25))


def _trained(root: Path, *variants: str) -> Path:
    for variant in variants:
        (root / "finetune" / variant / "fold0").mkdir(parents=True)
        (root / "finetune" / variant / "fold0" / "model.pt").write_bytes(b"")
    return root


def test_best_is_the_variant_evaluate_recorded_and_a_named_variant_overrides_it(tmp_path):
    from affectpipe.predict import va_variant
    from affectpipe.va_selection import write_selection

    models = _trained(tmp_path / "models", "lora", "frozen_mlp")
    record = tmp_path / "selection.json"
    write_selection(record, {"lora": 0.5, "frozen_mlp": 0.7})
    assert va_variant("best", record, models) == ("frozen_mlp", None)
    assert va_variant("lora", record, models) == ("lora", None)


def test_without_a_record_the_first_trained_variant_stands_in_and_says_why(tmp_path):
    from affectpipe.predict import va_variant
    from affectpipe.va_selection import write_selection

    models = _trained(tmp_path / "models", "frozen_mlp", "cached")
    record = tmp_path / "selection.json"
    variant, note = va_variant("best", record, models)
    assert variant == "frozen_mlp"
    assert f"{record}: no VA selection record" in note and "serving 'frozen_mlp'" in note
    write_selection(record, {"lora": 0.9, "frozen_mlp": 0.1})  # selects a variant not trained here
    variant, note = va_variant("best", record, models)
    assert variant == "frozen_mlp" and "selects 'lora', which has no trained model" in note


@pytest.mark.parametrize("text", ["{not json", "[]", '{"selected": 3}', "{}"])
def test_a_broken_selection_record_is_an_error_naming_it(tmp_path, text):
    from affectpipe.predict import va_variant

    (tmp_path / "selection.json").write_text(text)
    with pytest.raises(InputProblem, match=r"selection\.json: .*(unreadable|names no variant)"):
        va_variant("best", tmp_path / "selection.json", _trained(tmp_path / "m", "lora"))


def test_cli_serves_the_checkouts_selected_variant(models_dir, tmp_path, monkeypatch):
    from affectpipe.va_selection import write_selection

    checkout = tmp_path / "checkout"  # where predict runs: a checkout with evaluate's record
    for name in ("dvc.yaml", "params.yaml"):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text((REPO / name).read_text())
    monkeypatch.chdir(checkout)
    video = make_video(tmp_path / "a.mp4")
    args = ["predict", str(video), "--models-dir", str(models_dir), "--device", "cpu"]
    write_selection(checkout / "plots/va/selection.json", {"lora": 0.2, "cached": 0.3})
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["models"]["va"].endswith("finetune/cached/fold0")
    assert "selects" not in result.stderr  # (the tiny checkpoint's rate note is expected)
    write_selection(checkout / "plots/va/selection.json", {"lora": 0.4, "cached": 0.3})
    result = CliRunner().invoke(app, args)  # lora is not trained here: cached stands in, noted
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["models"]["va"].endswith("finetune/cached/fold0")
    assert "note: " in result.stderr and "selects 'lora'" in result.stderr


def test_the_cli_finds_the_checkout_from_any_directory(tmp_path, monkeypatch):
    from affectpipe.predict import PROJECT_ROOT, project_root

    monkeypatch.chdir(tmp_path)
    assert project_root() == PROJECT_ROOT  # the checkout this package runs from
    (tmp_path / "models").mkdir()  # a stray folder called models does not make a checkout
    assert project_root() == PROJECT_ROOT
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("{}\n")
    assert project_root() == tmp_path  # another checkout, where the command runs


def test_va_preprocessing_from_neither_checkpoint_nor_params_is_named(tmp_path):
    from affectpipe.inference import VAEngine

    root = build_tiny_models(tmp_path / "m", av_models=())
    with pytest.raises(ConfigError, match=r"records no VASettings.*'preprocess.afewva.crop"):
        VAEngine(root / "finetune" / "cached" / "fold0", torch.device("cpu"), None)


def test_predict_reads_the_voice_layers_with_the_checkpoints_learned_weights(tmp_path):
    from affectpipe.inference import AVEngine

    root = build_tiny_models(tmp_path / "m", av_models=("audio",), va=False)
    ckpt = root / "multimodal" / "audio_ravdess"
    engine = AVEngine(ckpt, torch.device("cpu"), settings_from_params(PARAMS, "ravdess").clip)
    n = engine.model.cfg.voice_n_layers
    saved = torch.linspace(-1, 2, n).softmax(0).tolist()
    assert engine.model.layer_weights() == pytest.approx(saved)  # trained, not an even mix
    wave = (0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220)).astype(np.float32)
    mean = engine.voice_mean()
    mean.add(wave)
    voice = engine.voice_embedding(mean)
    assert voice.shape == (1, n, engine.model.cfg.voice_dim)  # every hidden state goes in
    before = engine(None, voice)["voice_emotion"]
    payload = load_checkpoint(ckpt)  # the same model but for its layer weights
    payload["state_dict"]["voice_proj.mix.logits"] = torch.linspace(2, -1, n)
    save_checkpoint(ckpt, payload["state_dict"], payload["config"], payload["provenance"], 0, {})
    after = AVEngine(ckpt, torch.device("cpu"), engine.settings)(None, voice)["voice_emotion"]
    assert not np.allclose(before, after)


def test_a_speaker_normalised_model_says_it_used_global_statistics(tmp_path):
    root = build_tiny_models(tmp_path / "m", va=False, speaker_norm="standardize")
    rec = make_predictor(root)(make_video(tmp_path / "a.mp4"))
    check_record(rec)
    assert rec["speaker_norm"] == "global statistics (speaker unknown)"
    plain = make_predictor(build_tiny_models(tmp_path / "p", va=False))
    assert plain(make_video(tmp_path / "b.mp4"))["speaker_norm"] is None


def test_an_unknown_speaker_is_standardised_with_the_stored_training_statistics(tmp_path):
    root = build_tiny_models(tmp_path / "m", av_models=("video",), va=False,
                             speaker_norm="standardize")  # fmt: skip
    ckpt = root / "multimodal" / "video_ravdess"
    payload = load_checkpoint(ckpt)
    d = payload["config"]["face_dim"]
    mean, std = torch.linspace(-1, 1, d), torch.linspace(0.5, 2, d)
    payload["state_dict"] |= {"face_global_mean": mean, "face_global_std": std}
    save_checkpoint(ckpt, payload["state_dict"], payload["config"], payload["provenance"], 0, {})
    engine = make_predictor(root).av["video"]
    face = torch.randn(1, d)
    got = engine(face, None)["face_emotion"]
    raw = engine.model(face=(face - mean) / std)["face_emotion"].softmax(-1)[0].detach()
    assert got == pytest.approx(engine.calibration.apply({"face_emotion": raw[None].numpy()})
                                ["face_emotion"][0], abs=1e-6)  # fmt: skip


def test_a_video_cut_short_is_predicted_on_what_decodes_with_notes(tmp_path):
    from tests.test_av_media import cut_with_index_in_front

    whole = make_video(tmp_path / "whole.mp4", n=60)
    cut_with_index_in_front(whole, tmp_path / "cut.mp4", keep=0.5)
    predictor = make_predictor(build_tiny_models(tmp_path / "m"))
    rec = predictor(tmp_path / "cut.mp4")
    check_record(rec)
    assert [n.split(",")[1].split(" of ")[1] for n in rec["notes"]] == [
        "video present (kept)", "audio present (kept)"
    ]  # fmt: skip
    assert all(n.startswith("truncated: header declares 4.0") for n in rec["notes"])
    assert rec["frames"] and rec["emotion"] is not None and rec["voice_emotion"] is not None
    assert predictor(whole)["notes"] == []


@pytest.mark.parametrize(("n", "chunk", "stride"), [(5, 2, None), (37, 8, None), (40, 3, 5),
                                                    (64, 64, 4)])  # fmt: skip
def test_va_windowed_as_frames_arrive_equals_windows_over_all_frames(tmp_path, n, chunk, stride):
    from affectpipe.data.windows import overlap_average, window_starts
    from affectpipe.inference import VAEngine

    root = build_tiny_models(tmp_path / "m", av_models=())
    engine = VAEngine(root / "finetune" / "cached" / "fold0", torch.device("cpu"),
                      settings_from_params(PARAMS, "ravdess").va)  # fmt: skip
    length, step = engine.window.length, stride or engine.window.eval_stride
    f = torch.randn(n, engine.model.cfg.in_dim)
    stream = engine.va_stream(stride)
    for i in range(0, n, chunk):
        stream.add(f[i : i + chunk])
        assert stream.held.shape[0] <= length + step  # never the whole video
    got = stream.result()
    starts = window_starts(n, length, step)  # every window over all frames at once
    with torch.no_grad():
        values = np.stack([engine.model.heads(f[s : s + length][None],
                                              torch.ones(1, min(length, n), dtype=torch.bool))
                           ["va"][0].numpy() for s in starts])  # fmt: skip
    expected = overlap_average([n], np.zeros(len(starts), np.int64), np.asarray(starts), values)[0]
    assert got.starts.tolist() == starts
    np.testing.assert_allclose(got.frames, expected, rtol=1e-5, atol=1e-6)
