"""Backbone loading: tiny presets go through save_pretrained/from_pretrained, offline errors."""

from __future__ import annotations

import hashlib

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
    assert again.config_hash == b.config_hash
    for p, q in zip(b.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(p, q)


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
