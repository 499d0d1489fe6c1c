"""Each way the real releases are held goes through `dvc repro` to metrics: audio-only RAVDESS
(`03-*.wav`), video-only RAVDESS (`02-*.mp4`), CREMA-D's `AudioWAV/` alone. The stores a
layout cannot fill are written empty with the reason, the models that need them are recorded
as not applicable (no stage fails), and the others train on every clip of their modality and
are scored by evaluate's own function."""

from __future__ import annotations

import json

import pytest

from affectpipe.evaluate import evaluate_av_model
from affectpipe.problems import NOT_APPLICABLE
from affectpipe.results import model_label, render
from tests.pipeline_repo import PipelineRepo, set_param

pytestmark = pytest.mark.slow

# layout: (dataset, params that make it, models that train, models not applicable)
LAYOUTS = {
    "ravdess audio-only": ("ravdess", {"download.ravdess.synthetic.modalities": [3]},
                           {"audio", "audio_egemaps"}, {"fusion", "video"}),
    "ravdess video-only": ("ravdess", {"download.ravdess.synthetic.modalities": [2]},
                           {"video"}, {"fusion", "audio", "audio_egemaps"}),
    "cremad audio-only": ("cremad", {"download.cremad.folders": ["AudioWAV"]},
                          {"audio", "audio_egemaps"}, {"fusion", "video"}),
}  # fmt: skip


def stage_of(model: str, dataset: str) -> str:
    if model == "audio_egemaps":
        return f"train_multimodal_audio@egemaps-{dataset}"
    return f"train_multimodal@{model}-{dataset}"


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_runs_dvc_repro_to_metrics(tmp_path, layout):
    dataset, params, trained, not_applicable = LAYOUTS[layout]
    repo = PipelineRepo.copy_of_project(tmp_path / "repo")
    for key, value in params.items():
        set_param(repo, key, value)
    set_param(repo, "train_multimodal.train.epochs", 3)  # the layout is the point, not the fit
    repo.commit("layout")
    models = sorted(trained | not_applicable)
    result = repo.run("dvc", "repro", *(stage_of(m, dataset) for m in models))
    assert "not applicable" in result.stdout
    raw = repo.root / "data" / "raw" / dataset
    media = {p.suffix for p in raw.rglob("*") if p.suffix in (".wav", ".mp4", ".flv")}
    assert media == ({".mp4"} if "video-only" in layout else {".wav"})
    plots = repo.root / "plots"
    for sub in ("av", "figures"):
        (plots / sub).mkdir(parents=True, exist_ok=True)
    av: dict = {}
    for model in models:
        ckpt = repo.root / "models" / "multimodal" / f"{model}_{dataset}"
        scores = evaluate_av_model(model, dataset, ckpt, repo.root / "data" / "features",
                                   repo.root / "data" / "processed" / dataset, plots)  # fmt: skip
        av.setdefault(model, {})[dataset] = scores
        if model in trained:
            assert (ckpt / "model.pt").is_file(), model
            assert 0.0 <= scores["test"]["accuracy"] <= 1.0 and scores["cv"]["folds"] > 1
        else:
            assert not (ckpt / "model.pt").exists(), model
            assert (
                "has " + ("audio" if "video-only" in layout else "video") in scores[NOT_APPLICABLE]
            )
    (repo.root / "metrics").mkdir(exist_ok=True)
    (repo.root / "metrics" / "av.json").write_text(json.dumps({"av": av}))
    table = render(repo.root / "metrics")
    assert "Not applicable to the data" in table
    for model in not_applicable:
        line = next(x for x in table.splitlines() if x.startswith(f"- {model_label(model)} / "))
        assert f"/ {dataset}: " in line and f"no clip of {dataset} has" in line
