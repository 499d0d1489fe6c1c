"""VA model: LoRA placement and gradients, the cached-block path, checkpoints, MoCo parts."""

import pytest
import torch

from affectpipe.features.backbones import load_backbone
from affectpipe.models.contrastive import ContrastivePretrainer, MemoryQueue
from affectpipe.models.load import va_model_config
from affectpipe.models.va import VAModel, resolve_blocks
from affectpipe.problems import InputProblem
from tests.va_configs import contrastive, model_config


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("clip", "tiny")


def _model(tiny, pipeline="lora", **kw):
    fresh = load_backbone("clip", "tiny").model  # LoRA wraps in place: one copy per model
    return VAModel(model_config(pipeline, tiny.dim, **kw), fresh)


def _pixels(tiny, b=2, n=3):
    side = tiny.model.config.image_size
    return torch.randn(b, n, 3, side, side)


def test_lora_trainable_count_matches_rank_times_widths(tiny):
    model = _model(tiny)
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    width, r = tiny.dim, 8
    # q_proj and v_proj of one block: A (r x W) + B (W x r) each
    assert sum(p.numel() for p in lora.values()) == 2 * r * (width + width) == 2048
    last = len(model.clip.encoder.layers) - 1
    assert all(f"layers.{last}." in n for n in lora), sorted(lora)


def test_real_vit_b32_lora_count_is_24576():
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(num_hidden_layers=1)  # ViT-B/32 widths; one block is enough to count
    model = VAModel(model_config("lora", 768), CLIPVisionModel(cfg))
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) == 24_576


def test_lora_weights_get_gradients_and_backbone_stays_frozen(tiny):
    model = _model(tiny)
    model.trainable_parameters(("lora", "projector", "temporal_head", "regressor"))
    x = model.hidden_before(_pixels(tiny).flatten(0, 1)).reshape(2, 3, -1)
    out = model(x, torch.ones(2, 3, dtype=torch.bool))
    out["va"].sum().backward()
    named = dict(model.named_parameters())
    lora_b = [p for n, p in named.items() if "lora_B" in n]
    assert lora_b and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)
    frozen = [p for n, p in named.items() if n.startswith("backbone.") and "lora_" not in n]
    assert all(p.grad is None and not p.requires_grad for p in frozen)


@pytest.mark.parametrize("pipeline", ["lora", "frozen_mlp"])
def test_cached_block_path_equals_full_backbone(tiny, pipeline):
    model = _model(tiny, pipeline).eval()
    px = _pixels(tiny)
    with torch.no_grad():
        full = model.encode_pixels(px)
        cached = model.encode(model.hidden_before(px.flatten(0, 1)).reshape(2, 3, -1))
        pooled = tiny.model(pixel_values=px.flatten(0, 1)).pooler_output.reshape(2, 3, -1)
    torch.testing.assert_close(cached, full)
    if pipeline == "frozen_mlp":  # no adapter: exactly the backbone's own pooled output
        torch.testing.assert_close(full, pooled, atol=1e-5, rtol=1e-5)


def test_token_pool_gives_every_normalised_token_on_both_paths(tiny):
    model = _model(tiny, "frozen_mlp", pool="tokens").eval()
    px = _pixels(tiny)
    side = tiny.model.config.image_size // tiny.model.config.patch_size
    with torch.no_grad():
        full = model.encode_pixels(px)
        cached = model.encode(model.hidden_before(px.flatten(0, 1)).reshape(2, 3, -1))
        out = tiny.model(pixel_values=px.flatten(0, 1)).last_hidden_state  # (6, T, W)
    tokens = (side * side + 1) * tiny.dim
    assert full.shape == (2, 3, tokens) and model.feat_dim == tokens
    torch.testing.assert_close(cached, full)
    want = tiny.model.post_layernorm(out).reshape(2, 3, -1)
    torch.testing.assert_close(full, want, atol=1e-5, rtol=1e-5)
    assert model(cached, torch.ones(2, 3, dtype=torch.bool))["va"].shape == (2, 3, 2)


def test_feature_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model = VAModel(model_config("cached", 64, feature_dropout=0.5, dropout=0.0))
    f, valid = torch.randn(2, 4, 64), torch.ones(2, 4, dtype=torch.bool)
    model.eval()
    with torch.no_grad():
        a, b = model.heads(f, valid)["z"], model.heads(f, valid)["z"]
        model.train()
        c = model.heads(f, valid)["z"]
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_unknown_pool_is_refused_by_name():
    record = {**model_config("lora", 8).record(), "pool": "mean"}
    with pytest.raises(
        InputProblem,
        match=r"^ckpt: recorded VAModelConfig: unknown pool 'mean'; valid: \[",
    ):
        va_model_config(record, "ckpt")


def test_outputs_shapes_ranges_and_norms(tiny):
    model = VAModel(model_config("cached", 64, tf_heads=4))
    valid = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = model(torch.randn(2, 5, 64), valid)
    assert out["z"].shape == (2, 5, 128) and out["g"].shape == (2, 128)
    assert out["va"].shape == (2, 5, 2) and out["va"].abs().max() <= 1
    torch.testing.assert_close(out["z"].norm(dim=-1), torch.ones(2, 5))
    torch.testing.assert_close(out["g"].norm(dim=-1), torch.ones(2))


def test_padding_does_not_change_valid_outputs():
    torch.manual_seed(0)
    model = VAModel(model_config("cached", 64)).eval()
    x = torch.randn(1, 4, 64)
    short = model(x[:, :3], torch.ones(1, 3, dtype=torch.bool))
    padded = model(x, torch.tensor([[True, True, True, False]]))
    torch.testing.assert_close(padded["va"][:, :3], short["va"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded["g"], short["g"], atol=1e-5, rtol=1e-5)


def test_checkpoint_state_skips_frozen_backbone_and_round_trips(tiny):
    a, b = _model(tiny), _model(tiny)
    with torch.no_grad():
        for n, p in a.named_parameters():
            if "lora_B" in n:
                p.normal_()
    state = a.checkpoint_state()
    assert any("lora_" in k for k in state)
    assert not any(k.startswith("backbone.") and "lora_" not in k for k in state)
    b.load_checkpoint_state(state)
    x = torch.randn(1, 2, 17 * 64)
    valid = torch.ones(1, 2, dtype=torch.bool)
    a.eval(), b.eval()
    torch.testing.assert_close(a(x, valid)["va"], b(x, valid)["va"])
    with pytest.raises(ValueError, match="checkpoint does not fit the model: missing"):
        b.load_checkpoint_state({k: v for k, v in state.items() if "regressor" not in k})


def test_bad_config_is_refused_by_name():
    record = model_config("cached", 8).record()
    with pytest.raises(InputProblem, match=r"unknown pipeline 'vit'; valid: \['lora'"):
        va_model_config({**record, "pipeline": "vit"}, "ckpt")
    with pytest.raises(InputProblem, match=r"^ckpt: .*unknown key 'heads'"):
        va_model_config({**record, "heads": 2}, "ckpt")
    with pytest.raises(InputProblem, match=r"^ckpt: .*missing key 'linear_path'"):
        va_model_config({k: v for k, v in record.items() if k != "linear_path"}, "ckpt")
    with pytest.raises(ValueError, match=r"lora_blocks \[7\] out of range for 4 blocks"):
        resolve_blocks([7], 4)
    with pytest.raises(ValueError, match="unknown trainable part"):
        VAModel(model_config("cached", 64)).trainable_parameters(("head",))


def test_queue_is_fifo_and_wraps_around():
    q = MemoryQueue(size=5, dim=2)
    keys = torch.arange(14, dtype=torch.float32).reshape(7, 2)
    va = torch.arange(14, dtype=torch.float32).reshape(7, 2)
    q.enqueue(keys[:3], va[:3], torch.tensor([0, 1, 2]))
    assert q.ptr.item() == 3 and q.clip.tolist() == [0, 1, 2, -1, -1]
    assert torch.isnan(q.va[3:]).all()
    q.enqueue(keys[3:7], va[3:7], torch.tensor([3, 4, 5, 6]))
    # slots 3, 4 then wrap to 0, 1: the two oldest (0, 1) are overwritten
    assert q.clip.tolist() == [5, 6, 2, 3, 4] and q.ptr.item() == 2
    torch.testing.assert_close(q.keys[0], keys[5])
    assert set(dict(q.named_buffers())) == {"keys", "va", "clip", "ptr"}


def _moco_batch() -> dict[str, torch.Tensor]:
    return {
        "x": torch.randn(2, 4, 64),
        "valid": torch.ones(2, 4, dtype=torch.bool),
        "va": torch.rand(2, 4, 2) * 2 - 1,
        "t": torch.arange(4).repeat(2, 1),
        "clip": torch.tensor([0, 1]),
    }


def test_key_encoder_is_ema_of_the_whole_trainable_query_path():
    torch.manual_seed(0)
    model = VAModel(model_config("cached", 64))
    trainable = set(model.trainable_parameters(("temporal", "projector", "temporal_head")))
    assert any(n.startswith("temporal.") for n in trainable)  # the trunk, not only the projector
    moco = ContrastivePretrainer(model, contrastive(momentum=0.9, queue_size=8))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # the query moved, trainable or not (frozen ones must not follow)
    before = {n: p.clone() for n, p in moco.key_model.named_parameters()}
    moco.train()
    moco(_moco_batch())  # a training forward makes the EMA step
    query = dict(model.named_parameters())
    for name, k in moco.key_model.named_parameters():
        want = 0.9 * before[name] + 0.1 * query[name] if name in trainable else before[name]
        torch.testing.assert_close(k, want, rtol=0, atol=1e-6, msg=name)
    assert not any(p.requires_grad for p in moco.key_model.parameters())
    assert not moco.key_model.training  # no dropout in keys


def test_keys_change_only_through_the_ema():
    torch.manual_seed(0)
    model = VAModel(model_config("cached", 64))
    model.trainable_parameters(("temporal", "projector", "temporal_head", "regressor"))
    moco = ContrastivePretrainer(model, contrastive(momentum=0.5, queue_size=64))
    batch = _moco_batch()
    moco.train()
    out = moco(batch)
    out["loss"].backward()
    assert all(p.grad is None for p in moco.key_model.parameters())
    # the queued keys are exactly what the key encoder computes from the same input
    moco.eval()
    with torch.no_grad():
        keys = moco.key_model(batch["x"], batch["valid"])["z"].flatten(0, 1)
    torch.testing.assert_close(moco.queue.keys[:8], keys)
    # an optimiser step moves the query but not the key encoder: only the EMA step does
    state = {n: p.clone() for n, p in moco.key_model.named_parameters()}
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0).step()
    assert all(torch.equal(p, state[n]) for n, p in moco.key_model.named_parameters())
    moco.train()
    moco(batch)
    assert not all(torch.equal(p, state[n]) for n, p in moco.key_model.named_parameters())


def test_pretrainer_enqueues_valid_frames_only_in_training():
    torch.manual_seed(0)
    model = VAModel(model_config("cached", 64))
    moco = ContrastivePretrainer(model, contrastive(queue_size=32))
    valid = torch.tensor([[True] * 4, [True, True, False, False]])
    batch = {
        "x": torch.randn(2, 4, 64),
        "valid": valid,
        "va": torch.rand(2, 4, 2) * 2 - 1,
        "t": torch.arange(4).repeat(2, 1),
        "clip": torch.tensor([0, 1]),
    }
    moco.eval()
    moco(batch)
    assert moco.queue.ptr.item() == 0
    moco.train()
    out = moco(batch)
    assert moco.queue.ptr.item() == 6 and moco.queue.clip[:6].tolist() == [0, 0, 0, 0, 1, 1]
    out["loss"].backward()
    assert model.projector.net[0].weight.grad is not None
    assert set(out) == {"loss", "local", "global", "smooth"}


def test_records_older_than_a_key_load_with_the_behaviour_they_had():
    record = model_config("cached", 8, pool="tokens", feature_dropout=0.3).record()
    old = {k: v for k, v in record.items() if k not in ("pool", "feature_dropout")}
    cfg = va_model_config(old, "ckpt")
    assert (cfg.pool, cfg.feature_dropout) == ("cls", 0.0)
    assert va_model_config(record, "ckpt") == model_config("cached", 8, pool="tokens",
                                                            feature_dropout=0.3)  # fmt: skip


def test_linear_probe_is_one_linear_layer_with_2_times_d_plus_1_trainable_weights():
    from affectpipe.train.va import STAGE1_PARTS, STAGE2_PARTS

    d = 64
    model = VAModel(model_config("linear_probe", d, standardize="whiten"))
    assert not model.has_embeddings and model.backbone is None and model.temporal is None
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and linears[0].weight.shape == (2, d)  # no hidden layer
    trainable = model.trainable_parameters(STAGE2_PARTS + ("projector",))
    assert trainable == ["regressor.linear.weight", "regressor.linear.bias"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * (d + 1)
    assert model.trainable_parameters(STAGE1_PARTS) == []  # nothing for a contrastive stage
    out = model(torch.randn(2, 5, d), torch.ones(2, 5, dtype=torch.bool))
    assert set(out) == {"f", "va"} and out["va"].shape == (2, 5, 2)
    assert out["va"].abs().max() == 0  # starts at zero, the smallest-norm solution


def test_linear_probe_output_is_linear_in_the_features():
    torch.manual_seed(0)
    model = VAModel(model_config("linear_probe", 8))
    with torch.no_grad():
        model.regressor.linear.weight.normal_()
        model.regressor.linear.bias.normal_()
    valid = torch.ones(1, 3, dtype=torch.bool)
    a, b = torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    va = lambda x: model(x, valid)["va"]  # noqa: E731
    # affine: f(a + b) - f(b) = f(a) - f(0); no tanh, no other frame of the window involved
    torch.testing.assert_close(va(a + b) - va(b), va(a) - va(torch.zeros_like(a)))
    torch.testing.assert_close(va(a)[:, :1], va(torch.cat([a[:, :1], b[:, 1:]], 1))[:, :1])


def test_a_checkpoint_of_the_variant_once_named_probe_loads_as_frozen_mlp():
    record = model_config("frozen_mlp", 64).record() | {"pipeline": "probe"}
    assert va_model_config(record, "ckpt").pipeline == "frozen_mlp"
