"""Backbone loading: tiny presets go through save_pretrained/from_pretrained, offline errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import torch
import transformers as tf

from affectpipe.features import backbones
from affectpipe.features.backbones import BackboneUnavailable, load_backbone, resolve_device


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("clip", tf.CLIPVisionModel), ("videomae", tf.VideoMAEModel), ("wav2vec2", tf.Wav2Vec2Model)],
)
def test_tiny_preset_loads_frozen_from_a_saved_folder(kind, cls):
    b = load_backbone(kind, "tiny")
    folder = backbones.tiny_folder(kind)
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    assert type(b.model) is cls and not b.model.training
    assert not any(p.requires_grad for p in b.model.parameters())
    assert b.dim == b.model.config.hidden_size
    # the same folder loaded as a local spec is the same model, with the same provenance hash
    again = load_backbone(kind, str(folder))
    assert again.config_hash == b.config_hash and again.weights_hash == b.weights_hash
    for p, q in zip(b.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_weights_with_the_same_config_are_refused_by_their_hash(tmp_path):
    from affectpipe.models.load import ProvenanceMismatch, check_backbone

    b = load_backbone("clip", "tiny")
    entry = {"backbone": "clip", "spec": str(tmp_path), "config_hash": b.config_hash,
             "weights_hash": b.weights_hash}  # fmt: skip
    assert check_backbone(b, entry, "model.ckpt") is b
    with torch.no_grad():  # a retrained or swapped checkpoint: one weight differs, config not
        next(b.model.parameters()).view(-1)[0] += 1e-3
    b.model.save_pretrained(tmp_path)
    b.processor.save_pretrained(tmp_path)
    changed = load_backbone("clip", str(tmp_path))
    assert changed.config_hash == b.config_hash and changed.weights_hash != entry["weights_hash"]
    with pytest.raises(ProvenanceMismatch, match=r"^model.ckpt: .*other weights.*same config"):
        check_backbone(changed, entry, "model.ckpt")
    old = {k: v for k, v in entry.items() if k != "weights_hash"}
    with pytest.raises(ProvenanceMismatch, match="records no weights hash"):
        check_backbone(changed, old, "model.ckpt")


def test_tiny_preset_is_byte_stable_across_builds(tmp_path, monkeypatch):
    digests = []
    for name in ("one", "two"):
        monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path / name))
        folder = backbones.tiny_folder("clip")
        digests.append(hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_tiny_clip_takes_lora_on_last_block_q_v():
    peft = pytest.importorskip("peft")
    b = load_backbone("clip", "tiny")
    last = b.model.config.num_hidden_layers - 1
    config = peft.LoraConfig(
        r=4,
        target_modules=["q_proj", "v_proj"],
        layers_to_transform=[last],
        layers_pattern="layers",
    )
    model = peft.get_peft_model(b.model, config)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(f"layers.{last}." in n for n in names)


def test_unreachable_hub_id_gives_one_error_that_says_how_to_run_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneUnavailable, match=r"set the spec to 'tiny'.*folder") as info:
        load_backbone("wav2vec2", "no-such-org/no-such-model")
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    ("fn", "arg", "match"),
    [
        (load_backbone, "resnet", "unknown backbone kind 'resnet'; valid kinds"),
        (resolve_device, "tpu", "unknown device 'tpu'"),
    ],
)
def test_bad_names_are_refused_listing_the_choices(fn, arg, match):
    with pytest.raises(ValueError, match=match):
        fn(arg, "tiny") if fn is load_backbone else fn(arg)


def test_auto_device_is_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"


def test_the_package_is_offline_by_default_and_a_hub_id_fails_in_one_line_naming_the_switch():
    """Run where nothing set HF_HUB_OFFLINE: importing affectpipe makes the hub offline."""
    code = (
        "import os, affectpipe\n"
        "from affectpipe.features.backbones import BackboneUnavailable, load_backbone\n"
        "print(os.environ['HF_HUB_OFFLINE'])\n"
        "try:\n"
        "    load_backbone('clip', 'no-such-org/no-such-model')\n"
        "except BackboneUnavailable as e:\n"
        "    print(str(e).count(chr(10)), 'HF_HUB_OFFLINE=1, the default' in str(e))\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "0", "True"]  # offline, one line, the switch named


def test_loading_a_backbone_prints_no_progress_bar(capfd):
    load_backbone("clip", "tiny")
    assert "Loading weights" not in capfd.readouterr().err


@pytest.mark.parametrize("kind", ["clip", "videomae"])
def test_input_size_reads_the_processor_config_alone(kind, tmp_path, monkeypatch):
    """`auto` crop/frame sizes: `tiny` resolves without building its folder; a folder holding
    only a processor config (the real architecture's, no weights) resolves too."""
    assert backbones.processor_side(load_backbone(kind, "tiny").processor) == 64
    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path / "cache"))
    assert backbones.input_size(kind, "tiny") == 64 and not (tmp_path / "cache").exists()
    real = backbones.default_processor(kind, backbones.real_size_config(kind))
    real.save_pretrained(tmp_path / "processor")
    assert backbones.input_size(kind, str(tmp_path / "processor")) == 224
    with pytest.raises(BackboneUnavailable, match="cannot load"):
        backbones.input_size(kind, str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="no image input size"):
        backbones.input_size("wav2vec2", "tiny")
