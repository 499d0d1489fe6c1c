"""A training stage run by hand, outside DVC, refuses feature stores made with other params."""

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from affectpipe.data.va_clips import check_store
from affectpipe.features.extract import ExtractConfig, expected_attrs
from affectpipe.features.store import BLOCK_CONTENT, FeatureWriter, StaleCacheError
from tests.test_multimodal_data import FIXTURE_EXTRACT, write_fixture
from tests.test_multimodal_train import PAIRS, PARAMS, stage

CLIP = ExtractConfig(spec="tiny", batch_size=8, dtype="auto")


@pytest.fixture(scope="module")
def ravdess_like(tmp_path_factory):
    root = write_fixture(tmp_path_factory.mktemp("fx"), actors=6, folds=3)
    for kind in ("videomae", "wav2vec2"):
        (root / f"features/{kind}_fixture.h5").rename(root / f"features/{kind}_ravdess.h5")
    return root


def run_by_hand(root, tmp_path, extract, processed=None):
    params = {"seed": 0, "preprocess": PAIRS, "extract": extract,
              "train_multimodal": PARAMS | {"train": PARAMS["train"] | {"epochs": 1}}}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = ["audio", "ravdess", "--processed-dir", str(processed or root / "processed"),
            "--features-dir", str(root / "features"), "--ckpt-dir", str(tmp_path / "ckpt"),
            "--live-dir", str(tmp_path / "live"),
            "--params", str(tmp_path / "params.yaml")]  # fmt: skip
    return CliRunner().invoke(stage().app, args)


def test_the_av_stage_trains_on_stores_made_with_its_params(ravdess_like, tmp_path):
    result = run_by_hand(ravdess_like, tmp_path, FIXTURE_EXTRACT)
    assert result.exit_code == 0, result.output


def test_the_av_stage_refuses_a_store_of_another_backbone_spec_in_one_line(ravdess_like, tmp_path):
    other = FIXTURE_EXTRACT | {"wav2vec2": FIXTURE_EXTRACT["wav2vec2"] | {"spec": "facebook/x"}}
    result = run_by_hand(ravdess_like, tmp_path, other)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "wav2vec2_ravdess.h5" in lines[0]
    assert "attribute 'spec' is 'fixture', expected 'facebook/x'" in lines[0]
    assert not (tmp_path / "ckpt").exists()


def test_the_av_stage_refuses_a_store_of_a_fixed_other_dtype(ravdess_like, tmp_path):
    other = FIXTURE_EXTRACT | {"videomae": FIXTURE_EXTRACT["videomae"] | {"dtype": "float16"}}
    result = run_by_hand(ravdess_like, tmp_path, other)
    assert result.exit_code == 1
    assert "videomae_ravdess.h5" in result.output and "attribute 'dtype'" in result.output


def test_the_av_stage_refuses_stores_made_before_preprocessing_changed(ravdess_like, tmp_path):
    changed = tmp_path / "processed"
    changed.mkdir()
    for name in ("clips.csv", "pairs.csv"):
        (changed / name).write_bytes((ravdess_like / "processed" / name).read_bytes())
    (changed / "report.json").write_text(json.dumps({"settings": {"frame_size": 224}}))
    result = run_by_hand(ravdess_like, tmp_path, FIXTURE_EXTRACT, processed=changed)
    assert result.exit_code == 1
    assert "attribute 'source_settings'" in result.output and "frame_size" in result.output


def _clip_store(path, **attrs):
    base = {"backbone": "clip", "spec": "tiny", "config_hash": "0", "dim": 4}
    with FeatureWriter(path, base | attrs) as w:
        w.add("001", np.zeros((3, 4), np.float32), frame=np.arange(3), split="train")


def test_a_va_store_of_another_spec_or_dtype_is_refused(tmp_path):
    _clip_store(tmp_path / "ok.h5", dataset="afewva", dtype="bfloat16")
    check_store(tmp_path / "ok.h5", expected_attrs("clip", CLIP, "afewva"))
    with pytest.raises(StaleCacheError, match="attribute 'spec' is 'tiny', expected 'other'"):
        other = ExtractConfig(spec="other", batch_size=8, dtype="auto")
        check_store(tmp_path / "ok.h5", expected_attrs("clip", other, "afewva"))
    fp32 = ExtractConfig(spec="tiny", batch_size=8, dtype="float32")
    with pytest.raises(StaleCacheError, match="attribute 'dtype' is 'bfloat16'"):
        check_store(tmp_path / "ok.h5", expected_attrs("clip", fp32, "afewva"))


def test_the_block_cache_is_checked_on_what_it_records(tmp_path):
    """It holds float32 hidden states of no named dataset: spec and settings are checked."""
    _clip_store(tmp_path / "blocks.h5", content=BLOCK_CONTENT, source_settings="{}")
    fp32 = ExtractConfig(spec="tiny", batch_size=8, dtype="float32")
    check_store(tmp_path / "blocks.h5", expected_attrs("clip", fp32, "afewva", tmp_path))
    (tmp_path / "report.json").write_text(json.dumps({"settings": {"crop_size": 224}}))
    with pytest.raises(StaleCacheError, match="source_settings"):
        check_store(tmp_path / "blocks.h5", expected_attrs("clip", fp32, "afewva", tmp_path))


def test_the_va_finetune_stage_run_by_hand_refuses_a_store_of_another_spec(tmp_path):
    from affectpipe.config import load_params
    from tests.pipeline_repo import REPO
    from tests.test_params_complete import stage_app

    params = load_params(REPO / "params.yaml")
    params["extract"]["clip"]["spec"] = "other"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    _clip_store(tmp_path / "clip_afewva.h5", dataset="afewva")
    args = ["cached", "--inputs", str(tmp_path / "clip_afewva.h5"), "--scratch",
            "--out", str(tmp_path / "ckpt"), "--live", str(tmp_path / "live"),
            "--params", str(tmp_path / "params.yaml")]  # fmt: skip
    result = CliRunner().invoke(stage_app("finetune"), args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "attribute 'spec' is 'tiny', expected 'other'" in lines[0]
    assert not (tmp_path / "ckpt").exists()


def test_a_store_whose_model_folder_now_holds_other_weights_is_refused(ravdess_like, tmp_path):
    import shutil

    import h5py
    import torch

    from affectpipe.features.backbones import load_backbone

    b = load_backbone("wav2vec2", "tiny")
    model = tmp_path / "w2v"
    b.model.save_pretrained(model)
    b.processor.save_pretrained(model)
    root = shutil.copytree(ravdess_like, tmp_path / "fx")
    with h5py.File(root / "features/wav2vec2_ravdess.h5", "r+") as f:  # as if made with it
        f.attrs.update(spec=str(model), config_hash=b.config_hash, weights_hash=b.weights_hash)
    extract = FIXTURE_EXTRACT | {"wav2vec2": FIXTURE_EXTRACT["wav2vec2"] | {"spec": str(model)}}
    (tmp_path / "same").mkdir()
    (tmp_path / "other").mkdir()
    assert run_by_hand(root, tmp_path / "same", extract).exit_code == 0
    with torch.no_grad():  # the folder is overwritten: same config, one weight differs
        next(b.model.parameters()).view(-1)[0] += 1e-3
    b.model.save_pretrained(model)
    result = run_by_hand(root, tmp_path / "other", extract)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "wav2vec2_ravdess.h5" in lines[0] and "other weights" in lines[0]
    assert "Traceback" not in result.output
