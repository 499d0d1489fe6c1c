"""`affectpipe predict` at the VA model's training time scale: consecutive frames at the rate
the checkpoint records, windows of its length, the stride and decode size asked for, and the
time base of every output in the record."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from affectpipe.cli import app
from affectpipe.inference import VAEngine
from affectpipe.predict import blank_faceless
from tests.test_predict import build_tiny_models, check_record, make_predictor, make_video

AFEWVA = {"crop_size": 32, "margin": 0.25, "fps": 25.0}  # as AFEW-VA preprocessing records
RAVDESS = {"n_frames": 8, "frame_size": 32, "crop": "center", "sample_rate": 16000}
RECORDED = {"afewva": AFEWVA, "ravdess": RAVDESS, "layer": 1}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A VA checkpoint trained (as it records) on 16-frame windows at 25 fps, stride 8."""
    return build_tiny_models(tmp_path_factory.mktemp("m"), recorded=RECORDED,
                             va_window={"length": 16, "eval_stride": 8})  # fmt: skip


@pytest.mark.parametrize(("fps", "n"), [(30.0, 90), (12.5, 38)])
def test_va_windows_span_16_frames_of_25_fps_whatever_the_video_rate(models, tmp_path, fps, n):
    rec = make_predictor(models)(make_video(tmp_path / "v.mp4", n=n, fps=fps))
    check_record(rec)
    tb = rec["time_base"]
    assert tb["video_fps"] == pytest.approx(fps)
    assert tb["va"] | {"decode_size": None} == {
        "fps": 25.0, "fps_recorded": True, "window_frames": 16, "window_s": 0.64,
        "stride_frames": 8, "stride_s": 0.32, "decode_max_side": None, "decode_size": None,
        "crop_size": AFEWVA["crop_size"],
    }  # fmt: skip
    times = [f["t"] for f in rec["frames"]]
    assert len(times) == int(np.floor((n - 1) / fps * 25)) + 1  # up to the last frame
    assert times == pytest.approx(np.arange(len(times)) * 0.04, abs=1e-4)
    windows = rec["va_windows"]
    assert all(w["end"] - w["start"] == pytest.approx(0.64, abs=2e-4) for w in windows)
    starts = [w["start"] for w in windows]
    assert np.diff(starts)[:-1] == pytest.approx(0.32, abs=2e-4)  # the last ends at the end
    assert starts[0] == 0.0 and windows[-1]["end"] == pytest.approx(times[-1] + 0.04, abs=2e-4)


def test_the_stride_option_sets_the_window_step(models, tmp_path):
    video = make_video(tmp_path / "v.mp4", n=90, fps=30)
    rec = make_predictor(models, va_stride=16)(video)
    assert (rec["time_base"]["va"]["stride_frames"], rec["time_base"]["va"]["stride_s"]) == (
        16, 0.64)  # fmt: skip
    starts = [w["start"] for w in rec["va_windows"]]
    assert starts == pytest.approx([0.0, 0.64, 1.28, 1.92, 2.36], abs=2e-4)  # 75 frames: 59 last
    with pytest.raises(ValueError, match="va_stride >= 1"):
        make_predictor(models, va_stride=0)
    with pytest.raises(ValueError, match="longer than the VA model's window of 16 frames"):
        make_predictor(models, va_stride=17)  # frames between windows would have no value


def test_frames_of_a_run_without_a_face_get_no_va_and_leave_the_means():
    frames = [{"t": k / 25, "valence": 0.1 * k, "arousal": -0.1 * k} for k in range(8)]
    windows = [{"start": s / 25, "end": (s + 4) / 25, "valence": 0.5, "arousal": 0.5}
               for s in (0, 2, 4)]  # fmt: skip
    block = {"frames": frames, "va_windows": windows, "valence_mean": 0.35, "arousal_mean": -0.35}
    faceless = np.array([False] * 4 + [True] * 4)  # the second 4-frame run found no face
    out = blank_faceless(block, faceless, np.array([0, 2, 4]), 4)
    assert [f["valence"] for f in out["frames"]] == [0.0, 0.1, 0.2, pytest.approx(0.3)] + [None] * 4
    assert [w["valence"] for w in out["va_windows"]] == [0.5, None, None]
    assert out["valence_mean"] == pytest.approx(0.15) and out["arousal_mean"] == pytest.approx(
        -0.15
    )


def test_the_decode_size_option_is_honoured_and_recorded(models, tmp_path):
    video = make_video(tmp_path / "v.mp4", n=20, size=(64, 48), fps=25)
    full = make_predictor(models)(video)["time_base"]["va"]
    assert (full["decode_max_side"], full["decode_size"]) == (None, [64, 48])
    small = make_predictor(models, max_side=32)(video)["time_base"]["va"]
    assert (small["decode_max_side"], small["decode_size"]) == (32, [32, 24])
    with pytest.raises(ValueError, match="max_side >= 2"):
        make_predictor(models, max_side=1)


def test_an_old_checkpoint_without_a_frame_rate_falls_back_to_afewvas_with_a_note(tmp_path):
    old = build_tiny_models(tmp_path / "old", recorded={**RECORDED, "afewva": {
        k: v for k, v in AFEWVA.items() if k != "fps"}})  # fmt: skip
    predictor = make_predictor(old)
    assert any("records no training frame rate" in n and "25 fps" in n
               for n in predictor.notes)  # fmt: skip
    rec = predictor(make_video(tmp_path / "v.mp4", n=30, fps=15))
    assert rec["time_base"]["va"]["fps"] == 25.0
    assert rec["time_base"]["va"]["fps_recorded"] is False
    new = make_predictor(build_tiny_models(tmp_path / "new", recorded=RECORDED))
    assert not any("frame rate" in n for n in new.notes)


def test_a_recorded_frame_rate_sets_the_sampling_rate(tmp_path):
    models = build_tiny_models(
        tmp_path / "m", recorded={**RECORDED, "afewva": {**AFEWVA, "fps": 10.0}}
    )
    rec = make_predictor(models)(make_video(tmp_path / "v.mp4", n=30, fps=15))
    assert rec["time_base"]["va"]["fps"] == 10.0
    assert [f["t"] for f in rec["frames"]] == pytest.approx(np.arange(20) * 0.1, abs=1e-4)


def test_frames_are_embedded_one_window_at_a_time(models, tmp_path, monkeypatch):
    seen = []
    embed = VAEngine.embed

    def spy(self, frames):
        seen.append(len(frames))
        return embed(self, frames)

    monkeypatch.setattr(VAEngine, "embed", spy)
    rec = make_predictor(models)(make_video(tmp_path / "v.mp4", n=90, fps=30))
    assert seen == [16, 16, 16, 16, 11] and sum(seen) == len(rec["frames"])


def test_the_av_time_base_is_the_emotion_checkpoints_frames(models, tmp_path):
    rec = make_predictor(models)(make_video(tmp_path / "v.mp4", n=30, fps=15))
    av = rec["time_base"]["av"]
    assert (av["frames"], av["frame_size"], av["sample_rate"]) == (8, 32, 16000)


def test_the_cli_passes_stride_and_decode_size_through(models, tmp_path):
    video = make_video(tmp_path / "v.mp4", n=90, size=(64, 48), fps=30)
    args = ["predict", str(video), "--models-dir", str(models), "--device", "cpu",
            "--stride", "4", "--max-side", "32"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    va = json.loads(result.stdout)["time_base"]["va"]
    assert (va["stride_frames"], va["decode_max_side"], va["decode_size"]) == (4, 32, [32, 24])
    assert CliRunner().invoke(app, [*args[:-4], "--stride", "0"]).exit_code != 0
