"""Fusion model, baselines, label masking and the multimodal loss on random tensors."""

import numpy as np
import pandas as pd
import pytest
import torch

from affectpipe.calibration import fit_temperature
from affectpipe.config import load_params
from affectpipe.data.av_dataset import PairDataset, check_labels
from affectpipe.data.labels import CREMAD_CLASSES, EMOTION_ID
from affectpipe.losses import IGNORE, av_loss, class_weights
from affectpipe.models.multimodal import (
    FUSION_KEYS,
    FUSIONS,
    AVEmotionModel,
    AVModelConfig,
    CongruenceHead,
    ModalityProjector,
    head_probabilities,
)
from affectpipe.problems import InputProblem, ProblemLog
from affectpipe.train.multimodal import loss_terms, stage_config
from tests.pipeline_repo import REPO

CREMAD = list(CREMAD_CLASSES)
ABSENT = [EMOTION_ID["calm"], EMOTION_ID["surprised"]]
LOSS = loss_terms(
    "fusion", stage_config(load_params(REPO / "params.yaml")["train_multimodal"], "fusion")[1]
)


def config(**kw) -> AVModelConfig:
    """A small config; a baseline's has no fusion keys (None) unless `kw` sets them."""
    baseline = dict.fromkeys(FUSION_KEYS) if kw.get("modality", "fusion") != "fusion" else {}
    values = dict(
        face_dim=12,
        voice_dim=10,
        hidden=16,
        modality="fusion",
        fusion="concat",
        projector="linear",
        congruence="agreement",
        dropout=0.0,
        attention_heads=2,
        classes=CREMAD,
        classifier="network",
        speaker_norm="none",
        voice_n_layers=None,
        voice_layers=None,
    )
    return AVModelConfig(**(values | baseline | kw))


def tiny(modality="fusion", fusion="concat", classes=CREMAD, **kw):
    torch.manual_seed(0)
    own = {"fusion": fusion} if modality == "fusion" else {}
    return AVEmotionModel(config(modality=modality, classes=list(classes), **own, **kw))


def batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    face_em = torch.tensor(CREMAD)[torch.randint(0, 6, (n,), generator=g)]
    voice_em = face_em.clone()
    voice_em[n // 2 :] = torch.tensor(CREMAD)[torch.randint(0, 6, (n - n // 2,), generator=g)]
    congruent = (face_em == voice_em).float()
    return {
        "face": torch.randn(n, 12, generator=g),
        "voice": torch.randn(n, 10, generator=g),
        "face_emotion": face_em,
        "voice_emotion": voice_em,
        "congruent": congruent,
        "emotion": torch.where(congruent > 0, face_em, IGNORE),
    }


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fusion_outputs_every_head_with_expected_shapes(fusion):
    out = tiny(fusion=fusion)(torch.randn(5, 12), torch.randn(5, 10))
    for head in ("emotion", "face_emotion", "voice_emotion"):
        assert out[head].shape == (5, 8)
    assert out["congruence"].shape == (5,) and out["embedding"].shape == (5, 16)
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize(
    ("modality", "heads"),
    [
        ("audio", {"emotion", "voice_emotion", "embedding"}),
        ("video", {"emotion", "face_emotion", "embedding"}),
    ],
)
def test_baselines_have_only_their_modality_heads(modality, heads):
    model = tiny(modality)
    out = model(face=torch.randn(3, 12), voice=torch.randn(3, 10))
    assert set(out) == heads
    single = out["voice_emotion"] if modality == "audio" else out["face_emotion"]
    assert torch.equal(out["emotion"], single)


def test_missing_modality_input_is_a_clear_error():
    with pytest.raises(ValueError, match="'audio' model needs voice features"):
        tiny("audio")(face=torch.randn(2, 12))
    with pytest.raises(ValueError, match="'fusion' model needs face or voice features"):
        tiny()()


def test_fusion_model_given_one_modality_returns_that_modality_head_only():
    model = tiny().eval()
    face, voice = torch.randn(3, 12), torch.randn(3, 10)
    both = model(face=face, voice=voice)
    assert set(model(face=face)) == {"face_emotion"}
    assert set(model(voice=voice)) == {"voice_emotion"}
    assert torch.equal(model(face=face)["face_emotion"], both["face_emotion"])
    assert torch.equal(model(voice=voice)["voice_emotion"], both["voice_emotion"])


def test_head_probabilities_are_softmax_and_sigmoid_of_the_heads():
    out = tiny().eval()(torch.randn(4, 12), torch.randn(4, 10))
    probs = head_probabilities(out)
    assert list(probs) == ["emotion", "face_emotion", "voice_emotion", "congruence"]
    assert torch.allclose(probs["emotion"].sum(-1), torch.ones(4, dtype=torch.float64))
    assert torch.equal(probs["congruence"], torch.sigmoid(out["congruence"].double()))


def test_a_present_class_far_below_the_top_keeps_a_probability_calibration_can_fit():
    model = tiny().eval()
    with torch.no_grad():
        model.emotion_head.bias[EMOTION_ID["sad"]] = -300.0  # beyond float32's exp range
        probs = head_probabilities(model(torch.randn(8, 12), torch.randn(8, 10)))["emotion"]
    assert (probs[:, EMOTION_ID["sad"]] > 0).all()
    assert (probs[:, ABSENT] == 0).all()  # masked classes alone stay at exactly 0
    labels = np.full(8, EMOTION_ID["sad"])
    assert np.isfinite(fit_temperature(probs.numpy(), labels, (0.05, 20.0)))


def test_absent_cremad_classes_are_never_predicted_even_with_huge_bias():
    model = tiny()
    with torch.no_grad():
        for head in (model.emotion_head, model.face_head, model.voice_head):
            head.bias[ABSENT] = 1e6
    out = model(torch.randn(64, 12), torch.randn(64, 10))
    for head in ("emotion", "face_emotion", "voice_emotion"):
        assert not np.isin(out[head].argmax(-1).numpy(), ABSENT).any()
        assert out[head].softmax(-1)[:, ABSENT].max() == 0


def test_masked_classes_get_no_loss_and_no_gradient():
    model = tiny()
    b = batch()
    out = model(b["face"], b["voice"])
    for v in out.values():
        v.retain_grad()
    loss, _ = av_loss(out, b, LOSS, {})
    loss.backward()
    assert torch.isfinite(loss)
    for head in ("emotion", "face_emotion", "voice_emotion"):
        assert out[head].grad[:, ABSENT].abs().max() == 0
        assert out[head].grad[:, CREMAD].abs().max() > 0


def test_class_mask_is_a_buffer_saved_in_the_state_dict():
    assert tiny().state_dict()["class_mask"].tolist() == [c in CREMAD for c in range(8)]


@pytest.mark.parametrize(
    ("term", "own", "others"),
    [
        ("face_emotion", "face_head", ["voice_head", "emotion_head", "congruence_head"]),
        ("voice_emotion", "voice_head", ["face_head", "emotion_head", "congruence_head"]),
        ("emotion", "emotion_head", ["face_head", "voice_head", "congruence_head"]),
        # the modality predictions enter the congruence head detached
        ("congruence", "congruence_head", ["emotion_head", "face_head", "voice_head"]),
    ],
)
def test_each_head_receives_its_own_loss(term, own, others):
    model = tiny()
    b = batch()
    _, parts = av_loss(model(b["face"], b["voice"]), b, LOSS, {})
    parts[term].backward()

    def grad(name):
        return sum(
            p.grad.abs().sum() for p in getattr(model, name).parameters() if p.grad is not None
        )

    assert grad(own) > 0
    for name in others:
        assert grad(name) == 0, f"{name} got gradient from the {term} loss"


def test_incongruent_pairs_do_not_train_the_fused_emotion_head():
    model = tiny()
    b = batch()
    b["emotion"][:] = IGNORE  # all pairs incongruent
    loss, parts = av_loss(model(b["face"], b["voice"]), b, LOSS, {})
    assert "emotion" not in parts and {"face_emotion", "voice_emotion", "congruence"} == set(parts)


def test_class_weights_balance_present_classes_and_zero_absent():
    t = torch.tensor([0] * 6 + [2] * 2 + [3] * 2 + [4, 5, 6] + [IGNORE] * 4)
    w = class_weights(t, CREMAD)
    assert w[ABSENT].tolist() == [0, 0]
    assert w[CREMAD].mean().item() == pytest.approx(1.0)
    assert w[0] * 6 == pytest.approx(w[2].item() * 2)


def test_pair_dataset_targets_and_skipped_pairs_are_recorded():
    pairs = pd.DataFrame(
        {
            "split": "train",
            "face_clip": ["a", "a", "b"],
            "voice_clip": ["a", "b", "zz"],
            "kind": ["congruent", "hard", "easy"],
            "congruent": [1, 0, 0],
            "face_emotion": [0, 0, 3],
            "voice_emotion": [0, 3, 4],
        }
    )
    feats = {"a": np.ones(12, np.float32), "b": np.zeros(12, np.float32)}
    log = ProblemLog("skip")
    ds = PairDataset(pairs, feats, {k: v[:10] for k, v in feats.items()}, log)
    assert len(ds) == 2 and ds.emotion.tolist() == [0, IGNORE]
    assert log.skipped[0]["reason"].startswith("pair b+zz skipped: no features for ['zz']")
    with pytest.raises(InputProblem, match="no features for"):
        PairDataset(pairs, feats, feats, ProblemLog("strict"))


def test_labels_outside_the_dataset_classes_are_refused():
    pairs = pd.DataFrame(
        {
            "split": "train",
            "face_clip": ["a"],
            "voice_clip": ["a"],
            "kind": ["congruent"],
            "congruent": [1],
            "face_emotion": [EMOTION_ID["calm"]],
            "voice_emotion": [1],
        }
    )
    ds = PairDataset(
        pairs, {"a": np.ones(4, np.float32)}, {"a": np.ones(4, np.float32)}, ProblemLog()
    )
    with pytest.raises(InputProblem, match=r"emotion ids \[1\] are not among the classes"):
        check_labels(ds, CREMAD, "pairs.csv")


def test_inputs_are_standardised_with_training_statistics_saved_as_buffers():
    model = tiny()
    face = 5.0 + 0.01 * torch.randn(50, 12)  # a large shared component, small differences
    voice = torch.randn(50, 10)
    model.set_feature_stats(face, voice)
    state = model.state_dict()
    assert torch.allclose(state["face_proj.mean"], face.mean(0))
    assert torch.allclose(state["face_proj.std"], face.std(0))
    z = (face - model.face_proj.mean) / model.face_proj.std
    assert torch.allclose(z.mean(0), torch.zeros(12), atol=1e-4)


def test_linear_projector_is_affine_and_mlp_projector_is_not():
    torch.manual_seed(0)
    x, y = torch.randn(4, 12), torch.randn(4, 12)
    for kind, affine in (("linear", True), ("mlp", False)):
        proj = ModalityProjector(12, 16, dropout=0.0, kind=kind).eval()
        mixed = proj(0.3 * x + 0.7 * y)
        assert torch.allclose(mixed, 0.3 * proj(x) + 0.7 * proj(y), atol=1e-5) == affine, kind


def test_agreement_head_scores_agreeing_predictions_higher():
    head = CongruenceHead(hidden=16, n_classes=8, dropout=0.0, kind="agreement")
    eye = torch.eye(8)
    p_face = 0.9 * eye[[0, 1]] + 0.1 / 8
    p_voice = 0.9 * eye[[0, 2]] + 0.1 / 8  # pair 0 agrees, pair 1 does not
    logits = head(torch.zeros(2, 16), p_face, p_voice)
    assert logits.shape == (2,) and logits[0] > logits[1]
    assert sum(p.numel() for p in head.parameters()) == 2  # a scale and a bias


@pytest.mark.parametrize("congruence", ["agreement", "mlp"])
def test_congruence_heads_train_on_their_loss(congruence):
    model = tiny(congruence=congruence)
    b = batch()
    _, parts = av_loss(model(b["face"], b["voice"]), b, LOSS, {})
    parts["congruence"].backward()
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.congruence_head.parameters()
    )


@pytest.mark.parametrize(("key", "value"), [("projector", "relu"), ("congruence", "cosine")])
def test_unknown_projector_or_congruence_head_is_refused_by_name(key, value):
    with pytest.raises(ValueError, match=f"unknown .*'{value}'"):
        config(**{key: value})


def test_a_baseline_config_has_no_fusion_keys_and_the_fusion_config_needs_them():
    with pytest.raises(ValueError, match=r"audio model has no fusion: \['fusion'\] must be None"):
        config(modality="audio", fusion="concat")
    with pytest.raises(ValueError, match="fusion model needs"):
        config(attention_heads=None)
    assert config(modality="video").fusion is None


def layered(mode, layers, n=4, **kw):
    torch.manual_seed(0)
    return AVEmotionModel(config(modality="audio", fusion=None, congruence=None,
                                 attention_heads=None, voice_n_layers=n,
                                 voice_layers={"mode": mode, "layers": layers}, **kw))  # fmt: skip


@pytest.mark.parametrize(("mode", "layers"), [("single", [2]), ("average", [1, 3])])
def test_single_and_average_layer_modes_read_the_right_hidden_states(mode, layers):
    model = layered(mode, layers)
    voice = torch.randn(5, 4, 10)
    expected = AVEmotionModel(config(modality="audio", fusion=None, congruence=None,
                                     attention_heads=None))  # fmt: skip
    state = {k: v for k, v in model.state_dict().items() if "index" not in k}
    state |= {k: state[k][0] for k in ("voice_proj.mean", "voice_proj.std")}  # 0, 1: unset
    expected.load_state_dict(state)
    picked = voice[:, layers].mean(1)
    torch.testing.assert_close(model(voice=voice)["emotion"], expected(voice=picked)["emotion"])
    other = voice.clone()
    other[:, [i for i in range(4) if i not in layers]] = 99.0  # the layers not read
    torch.testing.assert_close(model(voice=other)["emotion"], model(voice=voice)["emotion"])


def test_weighted_layers_learn_their_softmax_weights_with_the_model():
    model = layered("weighted", [0, 1, 2, 3])
    assert model.layer_weights() == pytest.approx([0.25] * 4)  # an even mix to start
    voice = torch.randn(32, 4, 10)
    target = torch.tensor(CREMAD)[(voice[:, 2, 0] > 0).long() * 2]  # only layer 2 tells
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(voice=voice)["emotion"], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    weights = model.layer_weights()
    assert sum(weights) == pytest.approx(1.0) and max(weights) == weights[2] > 0.25
    assert "voice_proj.mix.logits" in model.state_dict()


@pytest.mark.parametrize(("layers", "message"), [([4], "do not fit"), ([1, 2], "exactly one")])
def test_voice_layers_that_do_not_fit_the_store_are_refused(layers, message):
    from affectpipe.models.multimodal import VoiceLayersParams, resolve_layers

    with pytest.raises(ValueError, match=message):
        resolve_layers(VoiceLayersParams(mode="single", layers=layers), 4)
    assert resolve_layers(VoiceLayersParams(mode="weighted", layers=[-1, 0]), 4) == [3, 0]
    assert resolve_layers(VoiceLayersParams(mode="average", layers="all"), 3) == [0, 1, 2]


@pytest.mark.parametrize("modality", ["fusion", "audio", "video"])
def test_the_linear_classifier_maps_standardised_features_straight_to_logits(modality):
    own = {} if modality == "fusion" else dict.fromkeys(FUSION_KEYS)
    model = AVEmotionModel(config(modality=modality, classifier="linear", **own))
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    heads = {"fusion": 3, "audio": 1, "video": 1}[modality]
    assert len(linear) == heads  # no projection, no fusion MLP: one weight matrix per head
    if modality != "audio":
        assert model.face_head.in_features == 12
    if modality == "fusion":
        assert model.emotion_head.in_features == 12 + 10
        out = model(face=torch.randn(3, 12), voice=torch.randn(3, 10))
        assert out["congruence"].shape == (3,)
    with pytest.raises(ValueError, match="fusion must be 'concat'"):
        config(classifier="linear", fusion="gated")
