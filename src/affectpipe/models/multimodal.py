"""Face/voice emotion and congruence on cached clip embeddings.

One model class covers the three variants trained by `train_multimodal`:
- `fusion`: both modalities. Each is projected to `hidden` dims, the two are fused (concat + MLP,
  gated, or attention over the two modality tokens), and four heads read the result: the fused
  emotion, the face emotion, the voice emotion (so a prediction can say "the face looks sad, the
  voice sounds angry") and face/voice congruence.
- `video`: the face branch only (face emotion; its `emotion` output is the face head).
- `audio`: the voice branch only (voice emotion; its `emotion` output is the voice head).
Congruence needs both modalities, so only `fusion` has that head.

Classes a dataset lacks (CREMA-D has no calm and no surprised) are masked out of every emotion
logit vector with a persistent `class_mask` buffer: they get probability 0, are never predicted,
and never count in the loss.

A voice store may be *layered*: per clip, one pooled vector per wav2vec2 hidden state, (L, D).
The model picks from it (`LayerMix`: one layer, the mean of some, or a learned softmax-weighted
sum, SUPERB style), so the layer is a training choice, not a re-extraction. `classifier: linear`
drops the projection and the fusion MLP: each head is a multinomial logistic regression on the
standardised features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, get_args

import torch
from torch import nn

from affectpipe.config import params_section
from affectpipe.data.labels import N_EMOTIONS

Modality = Literal["fusion", "audio", "video"]
Fusion = Literal["concat", "gated", "attention"]
Projector = Literal["linear", "mlp"]
CongruenceKind = Literal["agreement", "mlp"]
Classifier = Literal["network", "linear"]
LayerMode = Literal["single", "average", "weighted"]
SpeakerNorm = Literal["none", "standardize"]
MODALITIES: tuple[str, ...] = get_args(Modality)
FUSIONS: tuple[str, ...] = get_args(Fusion)
PROJECTORS: tuple[str, ...] = get_args(Projector)
CONGRUENCE_HEADS: tuple[str, ...] = get_args(CongruenceKind)
CLASSIFIERS: tuple[str, ...] = get_args(Classifier)
LAYER_MODES: tuple[str, ...] = get_args(LayerMode)
SPEAKER_NORMS: tuple[str, ...] = get_args(SpeakerNorm)
EMOTION_HEADS: tuple[str, ...] = ("emotion", "face_emotion", "voice_emotion")


@params_section
class AVModelParams:
    """The `train_multimodal.model` params: the modality branches, which every variant has."""

    hidden: int  # width of each projected modality and of the fused representation
    projector: Projector  # linear | mlp (Linear -> GELU): the per-modality projection
    dropout: float
    speaker_norm: SpeakerNorm  # standardize: each input by its own speaker's mean/std (no labels)


@params_section
class VoiceLayersParams:
    """`train_multimodal.voice_layers`: which hidden states of a layered voice store the model
    reads (a single-vector store has one, and ignores this)."""

    mode: LayerMode  # single | average | weighted (learned softmax weights, SUPERB)
    layers: list[int] | Literal["all"]  # hidden_states indices (negative: from the end) | all


def resolve_layers(params: VoiceLayersParams, n_layers: int) -> list[int]:
    """The hidden-state indices `params` name in a store of `n_layers`, non-negative, in order;
    a ValueError says what does not fit."""
    wanted = list(range(n_layers)) if params.layers == "all" else list(params.layers)
    bad = [i for i in wanted if not -n_layers <= i < n_layers]
    if bad or not wanted:
        raise ValueError(
            f"voice_layers.layers {params.layers} do not fit a store of {n_layers} hidden states "
            f"(valid: 0..{n_layers - 1}, or negative from the end)"
        )
    out = [i % n_layers for i in wanted]
    if len(set(out)) != len(out):
        raise ValueError(f"voice_layers.layers {params.layers} name a hidden state twice")
    if params.mode == "single" and len(out) != 1:
        raise ValueError(f"voice_layers.mode single needs exactly one layer, got {params.layers}")
    return out


@params_section
class FusionParams:
    """The fusion model's own architecture (in `train_multimodal.fusion`): how the two branches
    are fused and judged congruent. A baseline has one branch, so none of this."""

    fusion: Fusion  # concat | gated | attention
    congruence: CongruenceKind  # agreement (scaled log-agreement) | mlp (fused + probs)
    attention_heads: int  # attention fusion only


FUSION_KEYS: tuple[str, ...] = ("fusion", "congruence", "attention_heads")


@dataclass(frozen=True)
class AVModelConfig:
    """Sizes and variant of an `AVEmotionModel`; saved inside every checkpoint (in this order).

    Built by `from_params` for training, or from a checkpoint's saved config by
    `affectpipe.models.load.load_av_model`. The fusion keys (`FUSION_KEYS`) are None in a
    baseline's config: it has no fusion, so it records none.
    """

    face_dim: int  # clip embedding sizes, from the feature files
    voice_dim: int
    hidden: int
    modality: str  # fusion | audio | video
    fusion: str | None
    projector: str
    congruence: str | None
    dropout: float
    attention_heads: int | None
    classes: list[int]  # the dataset's emotion ids; the others are masked
    classifier: str  # network (projection, fusion MLP) | linear (logistic regression per head)
    speaker_norm: str  # none | standardize (inputs per speaker; fallback statistics buffered)
    voice_n_layers: int | None  # hidden states per clip in a layered voice store, else None
    voice_layers: dict | None  # {"mode", "layers": resolved indices}; None: single-vector store

    @classmethod
    def from_params(
        cls,
        params: AVModelParams,
        fusion: FusionParams | None,
        modality: str,
        face_dim: int,
        voice_dim: int,
        classes: list[int],
        classifier: str,
        voice_n_layers: int | None,
        voice_layers: VoiceLayersParams,
    ) -> AVModelConfig:
        """The config of one variant: dims from the features, the rest from params (`fusion`:
        the fusion model's own params, None for a baseline). `voice_n_layers`: hidden states per
        clip of a layered voice store (None: one vector), read as `voice_layers` says."""
        own = {k: getattr(fusion, k) if fusion is not None else None for k in FUSION_KEYS}
        layers = None
        if voice_n_layers is not None and modality != "video":
            picked = resolve_layers(voice_layers, voice_n_layers)
            layers = {"mode": voice_layers.mode, "layers": picked}
        return cls(
            face_dim=face_dim,
            voice_dim=voice_dim,
            modality=modality,
            classes=list(classes),
            classifier=classifier,
            voice_n_layers=voice_n_layers if modality != "video" else None,
            voice_layers=layers,
            **asdict(params),
            **own,
        )

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality '{self.modality}'; valid: {list(MODALITIES)}")
        if self.projector not in PROJECTORS:
            raise ValueError(f"unknown projector '{self.projector}'; valid: {list(PROJECTORS)}")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier '{self.classifier}'; valid: {list(CLASSIFIERS)}")
        if self.speaker_norm not in SPEAKER_NORMS:
            raise ValueError(
                f"unknown speaker_norm '{self.speaker_norm}'; valid: {list(SPEAKER_NORMS)}"
            )
        if (self.voice_layers is None) != (self.voice_n_layers is None):
            raise ValueError("voice_layers and voice_n_layers go together (a layered voice store)")
        if self.voice_layers is not None:
            if self.voice_layers.get("mode") not in LAYER_MODES:
                raise ValueError(f"unknown voice_layers mode {self.voice_layers.get('mode')!r}; "
                                 f"valid: {list(LAYER_MODES)}")  # fmt: skip
            layers = self.voice_layers.get("layers") or []
            if not layers or not all(0 <= i < self.voice_n_layers for i in layers):
                raise ValueError(f"voice_layers {layers} do not fit {self.voice_n_layers} layers")
        bad = [c for c in self.classes if not 0 <= c < N_EMOTIONS]
        if not self.classes or bad:
            raise ValueError(
                f"classes must be a non-empty subset of 0..{N_EMOTIONS - 1}, got {self.classes}"
            )
        given = [k for k in FUSION_KEYS if getattr(self, k) is not None]
        if self.modality != "fusion":
            if given:
                raise ValueError(f"the {self.modality} model has no fusion: {given} must be None")
            return
        if len(given) < len(FUSION_KEYS):
            raise ValueError(f"the fusion model needs {list(FUSION_KEYS)}, got {given}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion '{self.fusion}'; valid: {list(FUSIONS)}")
        if self.classifier == "linear" and self.fusion != "concat":
            raise ValueError(
                f"classifier 'linear' reads the concatenated features: fusion must be 'concat', "
                f"not '{self.fusion}'"
            )
        if self.congruence not in CONGRUENCE_HEADS:
            raise ValueError(
                f"unknown congruence head '{self.congruence}'; valid: {list(CONGRUENCE_HEADS)}"
            )
        if self.fusion == "attention" and self.hidden % self.attention_heads:
            raise ValueError(
                f"hidden ({self.hidden}) must be divisible by attention_heads "
                f"({self.attention_heads})"
            )


def mask_logits(logits: torch.Tensor, class_mask: torch.Tensor) -> torch.Tensor:
    """Give absent classes the lowest finite logit: softmax 0, never the argmax, no NaN grads."""
    return logits.masked_fill(~class_mask, torch.finfo(logits.dtype).min)


class LayerMix(nn.Module):
    """Hidden states of a layered store -> one vector: `single` layer, `average` of the listed
    ones, or `weighted`: softmax(w) . h over the listed layers with w learned with the model
    (SUPERB's weighted sum; w starts at 0, an even mix, and is saved in the checkpoint)."""

    def __init__(self, layers: list[int], mode: str):
        super().__init__()
        self.mode = mode
        self.register_buffer("index", torch.tensor(layers, dtype=torch.long))
        if mode == "weighted":
            self.logits = nn.Parameter(torch.zeros(len(layers)))

    def select(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.index)  # (B, L, D) -> (B, K, D)

    def weights(self) -> torch.Tensor:
        """The weight of each selected layer (sums to 1)."""
        if self.mode == "weighted":
            return self.logits.softmax(0)
        return torch.full((len(self.index),), 1.0 / len(self.index), device=self.index.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weights().to(x.dtype)[:, None]).sum(1)  # (B, K, D) -> (B, D)


class ModalityProjector(nn.Module):
    """Standardise -> (mix layers ->) Linear (-> GELU) -> Dropout: embeddings into `hidden` dims.

    Clip embeddings of a frozen backbone share a large common component (every clip's mean token
    looks alike) and differ in small directions; per-sample LayerNorm keeps that common part, so
    the input is standardised per dimension with training-set statistics instead (`mean`, `std`:
    buffers, set once by `set_stats`, saved in the checkpoint, moved with the model). A layered
    input (B, L, D) is standardised per layer and dimension, so that the layers enter `LayerMix`
    on one scale.

    `linear` (the default) keeps the projection linear, so a modality head on top is a logistic
    regression on the standardised embedding. In clip embeddings the speaker's identity is the
    largest variation and the expression a small direction; with ~100 training clips a nonlinear
    layer fits identity-specific cues that do not carry to unseen actors (measured with
    actor-grouped cross-validation in docs/multimodal.md). `mlp` adds the GELU; `none` (the
    `linear` classifier) has no projection at all: the output is the standardised input.
    """

    def __init__(self, in_dim: int, hidden: int, dropout: float, kind: str = "linear",
                 mix: LayerMix | None = None):  # fmt: skip
        super().__init__()
        self.mix = mix
        shape = (len(mix.index), in_dim) if mix is not None else (in_dim,)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))
        self.out_dim = in_dim if kind == "none" else hidden
        if kind == "none":
            self.net: nn.Module = nn.Identity()
        else:
            act = [nn.GELU()] if kind == "mlp" else []
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), *act, nn.Dropout(dropout))

    def _select(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix.select(x) if self.mix is not None else x

    @torch.no_grad()
    def set_stats(self, x: torch.Tensor) -> None:
        """Per-dimension mean and std of the training embeddings x (N, D_in) or (N, L, D_in)."""
        x = self._select(x)
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (self._select(x) - self.mean) / self.std
        if self.mix is not None:
            x = self.mix(x)  # (B, K, D_in) -> (B, D_in)
        return self.net(x)  # (B, D_in) -> (B, H)


class ConcatFusion(nn.Module):
    """The default: concatenate both modalities, then a 2-layer MLP back to `hidden`."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden)
        )

    def forward(self, f: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([f, v], dim=-1))  # (B, 2H) -> (B, H)


class GatedFusion(nn.Module):
    """Per-dimension gate between the modalities (Arevalo et al. 2017, gated multimodal unit).

    z = g * tanh(W_f f) + (1 - g) * tanh(W_v v), g = sigmoid(W_g [f; v]): the model can lean on
    whichever modality is more reliable for each feature.
    """

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.face = nn.Linear(hidden, hidden)
        self.voice = nn.Linear(hidden, hidden)
        self.gate = nn.Linear(2 * hidden, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, f: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(torch.cat([f, v], dim=-1)))  # (B, 2H) -> (B, H)
        return self.drop(g * torch.tanh(self.face(f)) + (1 - g) * torch.tanh(self.voice(v)))


class AttentionFusion(nn.Module):
    """Cross-modal attention: one pre-LN transformer layer over the [face, voice] token pair.

    Each modality is one token (a clip embedding), tagged with a learned modality embedding;
    self-attention over the pair lets each token attend to the other, and the fused vector is the
    mean of the two updated tokens.
    """

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.modality_embedding = nn.Parameter(torch.zeros(2, hidden))
        self.layer = nn.TransformerEncoderLayer(
            hidden,
            heads,
            dim_feedforward=2 * hidden,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
            activation="gelu",
        )
        self.norm = nn.LayerNorm(hidden)

    def forward(self, f: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        tokens = torch.stack([f, v], dim=1) + self.modality_embedding  # (B, 2, H)
        return self.norm(self.layer(tokens).mean(dim=1))  # (B, 2, H) -> (B, H)


class ConcatOnly(nn.Module):
    """The `linear` classifier's fusion: both standardised inputs side by side, nothing learned."""

    def forward(self, f: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.cat([f, v], dim=-1)  # (B, D_f + D_v)


def build_fusion(cfg: AVModelConfig) -> nn.Module:
    if cfg.fusion == "concat":
        return ConcatFusion(cfg.hidden, cfg.dropout)
    if cfg.fusion == "gated":
        return GatedFusion(cfg.hidden, cfg.dropout)
    return AttentionFusion(cfg.hidden, cfg.attention_heads, cfg.dropout)


class CongruenceHead(nn.Module):
    """Do face and voice express the same emotion? One logit per pair.

    With p_f and p_v the face and voice class probabilities, a = sum_k p_f[k] * p_v[k] is the
    probability that the two predictions agree. `agreement` (the default) maps log a to the logit
    with one scale and one bias: the decision rests on the modality heads, which are trained on
    every pair, and nothing in the head can memorise the ~100 training pairs (a hard pair shares
    actor and sentence, so only the emotion tells it apart). `mlp` also reads the fused vector,
    both probability vectors and their product through a hidden layer.
    """

    def __init__(self, hidden: int, n_classes: int, dropout: float, kind: str = "agreement"):
        super().__init__()
        self.kind = kind
        if kind == "agreement":
            self.scale = nn.Parameter(torch.ones(1))
            self.bias = nn.Parameter(torch.zeros(1))
        else:
            self.mlp = nn.Sequential(
                nn.Linear(hidden + 3 * n_classes + 1, hidden // 2),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden // 2, 1),
            )

    def forward(self, z: torch.Tensor, p_face: torch.Tensor, p_voice: torch.Tensor) -> torch.Tensor:
        both = p_face * p_voice  # (B, C)
        log_agree = both.sum(-1, keepdim=True).clamp_min(1e-6).log()  # (B, 1)
        if self.kind == "agreement":
            return (self.scale * log_agree + self.bias).squeeze(-1)  # (B, 1) -> (B,)
        x = torch.cat([z, p_face, p_voice, both, log_agree], dim=-1)  # (B, H + 3C + 1)
        return self.mlp(x).squeeze(-1)  # (B, 1) -> (B,)


class AVEmotionModel(nn.Module):
    """Fusion model or single-modality baseline on (face, voice) clip embeddings.

    `forward(face, voice)` takes (B, face_dim) and (B, voice_dim) tensors ((B, L, voice_dim)
    from a layered voice store), either possibly None, and returns a dict: `emotion` (B, C)
    masked logits, `embedding` (B, H), and where the variant has them `face_emotion`,
    `voice_emotion` (B, C) and `congruence` (B,) logits; given one
    modality only, the fusion model returns that modality's head. C is always 8 (the unified
    label set); absent classes are masked.
    """

    def __init__(self, cfg: AVModelConfig):
        super().__init__()
        self.cfg = cfg
        mask = torch.zeros(N_EMOTIONS, dtype=torch.bool)
        mask[list(cfg.classes)] = True
        self.register_buffer("class_mask", mask)
        self.uses_face = cfg.modality in ("fusion", "video")
        self.uses_voice = cfg.modality in ("fusion", "audio")
        linear = cfg.classifier == "linear"
        kind = "none" if linear else cfg.projector
        if self.uses_face:
            self.face_proj = ModalityProjector(cfg.face_dim, cfg.hidden, cfg.dropout, kind)
            self.face_head = nn.Linear(self.face_proj.out_dim, N_EMOTIONS)
        if self.uses_voice:
            layers = cfg.voice_layers
            mix = LayerMix(layers["layers"], layers["mode"]) if layers is not None else None
            self.voice_proj = ModalityProjector(cfg.voice_dim, cfg.hidden, cfg.dropout, kind, mix)
            self.voice_head = nn.Linear(self.voice_proj.out_dim, N_EMOTIONS)
        if cfg.speaker_norm == "standardize":  # an unknown speaker's inputs: training statistics
            for name, used, shape in (("face", self.uses_face, (cfg.face_dim,)),
                                      ("voice", self.uses_voice, self.voice_shape)):  # fmt: skip
                if used:
                    self.register_buffer(f"{name}_global_mean", torch.zeros(shape))
                    self.register_buffer(f"{name}_global_std", torch.ones(shape))
        if cfg.modality == "fusion":
            if linear:  # logistic regression on both standardised inputs side by side
                self.fusion: nn.Module = ConcatOnly()
                fused = cfg.face_dim + cfg.voice_dim
            else:
                self.fusion = build_fusion(cfg)
                fused = cfg.hidden
            self.emotion_head = nn.Linear(fused, N_EMOTIONS)
            self.congruence_head = CongruenceHead(fused, N_EMOTIONS, cfg.dropout, cfg.congruence)

    @property
    def voice_shape(self) -> tuple[int, ...]:
        """One clip's voice input: (L, D) from a layered store, else (D,)."""
        n = self.cfg.voice_n_layers
        return (n, self.cfg.voice_dim) if n is not None else (self.cfg.voice_dim,)

    def layer_weights(self) -> list[float] | None:
        """The weight of each selected voice hidden state (None without a layered voice)."""
        if not self.uses_voice or self.voice_proj.mix is None:
            return None
        return [float(w) for w in self.voice_proj.mix.weights().detach().cpu()]

    @torch.no_grad()
    def set_global_stats(self, face: tuple | None, voice: tuple | None) -> None:
        """The training set's (mean, std) of each raw input: what `speaker_norm: standardize`
        uses for a speaker whose own statistics are unknown (a single video at inference)."""
        for name, stats in (("face", face), ("voice", voice)):
            if stats is not None and hasattr(self, f"{name}_global_mean"):
                getattr(self, f"{name}_global_mean").copy_(torch.as_tensor(stats[0]))
                getattr(self, f"{name}_global_std").copy_(torch.as_tensor(stats[1]))

    def standardize_unknown_speaker(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """x standardised with the training set's statistics (`speaker_norm: standardize` and
        no statistics of its own speaker); unchanged without speaker normalisation."""
        if self.cfg.speaker_norm != "standardize":
            return x
        mean, std = (
            getattr(self, f"{modality}_global_mean"),
            getattr(self, f"{modality}_global_std"),
        )
        return (x - mean) / std

    def set_feature_stats(self, face: torch.Tensor, voice: torch.Tensor) -> None:
        """Standardise inputs with these training embeddings' statistics (before training)."""
        if self.uses_face:
            self.face_proj.set_stats(face)
        if self.uses_voice:
            self.voice_proj.set_stats(voice)

    def forward(
        self, face: torch.Tensor | None = None, voice: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Every head the given inputs allow: a modality head needs its input, the fused heads
        (fusion's `emotion`, `congruence`, `embedding`) need both. Inputs the variant does not
        use are ignored; none it can use is an error."""
        out: dict[str, torch.Tensor] = {}
        f = v = None
        if self.uses_face and face is not None:
            f = self.face_proj(face)  # (B, H)
            out["face_emotion"] = mask_logits(self.face_head(f), self.class_mask)
        if self.uses_voice and voice is not None:
            v = self.voice_proj(voice)  # (B, H)
            out["voice_emotion"] = mask_logits(self.voice_head(v), self.class_mask)
        if not out:
            needs = {"fusion": "face or voice", "video": "face", "audio": "voice"}
            raise ValueError(
                f"the '{self.cfg.modality}' model needs {needs[self.cfg.modality]} features"
            )
        if self.cfg.modality == "fusion":
            if f is not None and v is not None:
                z = self.fusion(f, v)  # (B, H)
                out["emotion"] = mask_logits(self.emotion_head(z), self.class_mask)
                # detached: the congruence loss does not bend the emotion heads towards agreeing
                p_face = out["face_emotion"].detach().softmax(-1)
                p_voice = out["voice_emotion"].detach().softmax(-1)
                out["congruence"] = self.congruence_head(z, p_face, p_voice)
                out["embedding"] = z
        elif self.cfg.modality == "video":
            out["emotion"], out["embedding"] = out["face_emotion"], f
        else:
            out["emotion"], out["embedding"] = out["voice_emotion"], v
        return out


def head_probabilities(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Probabilities of the heads in a `forward` output: each emotion head's softmax (B, 8) and
    the congruence sigmoid (B,), under the heads' own names. In float64: a float32 softmax
    rounds a class more than ~104 logits below the top to exactly 0, which calibration would take
    for a masked class (an over-confident model at real size does reach such gaps); only the
    masked classes' lowest-finite logits still give 0."""
    probs = {k: out[k].double().softmax(-1) for k in EMOTION_HEADS if k in out}
    if "congruence" in out:
        probs["congruence"] = torch.sigmoid(out["congruence"].double())
    return probs
