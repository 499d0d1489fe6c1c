"""The valence/arousal model, one class for the four pipelines.

- `lora`: CLIP's vision encoder with LoRA (peft) on the attention projections of its last
  block(s). Every block before the first adapted one is frozen, so its output is the same every
  epoch: training reads those hidden states from a cache and runs only the adapted blocks and
  the post-layernorm (`encode`); `encode_pixels` runs the whole backbone (inference, benchmark).
  The frame feature is CLIP's pooled CLS token (`pool: cls`) or every output token, normalised
  and concatenated (`pool: tokens`): the token grid keeps where on the face a change happens
  (mouth, brows), which a single pooled vector of a small encoder mixes with identity.
- `frozen_mlp`: the same, without LoRA: a frozen encoder with the same trained MLP heads.
- `cached`: frozen CLIP frame features (the pooled image embedding) read from the HDF5 store,
  then a small temporal transformer and the MLP heads.
- `linear_probe`: the same pooled features, standardised, and one linear layer to valence and
  arousal (`LinearVA`): no hidden layer, no temporal context, no contrastive space, so it has
  no stage 1 to train (`has_contrastive_stage`).

`lora`, `frozen_mlp` and `cached` share the frame projector (contrastive space z), the temporal
head (clip embedding g) and the regression head, which reads each frame's z plus its window's g
and, on a linear path, the frame feature itself. Frame features are standardised with
training-set statistics held in buffers (`set_feature_stats`, saved in every checkpoint): per
dimension (`diag`), or whitened (`whiten`) where the features are few and strongly correlated,
as the pooled vectors of a small encoder are, so that the heads do not depend on which
directions happen to be large.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from affectpipe.config import params_section
from affectpipe.models.heads import (
    FrameProjector,
    LinearVA,
    RegressionHead,
    TemporalHead,
    TemporalTransformer,
)

PIPELINES: tuple[str, ...] = ("lora", "frozen_mlp", "cached", "linear_probe")
BLOCK_PIPELINES: tuple[str, ...] = ("lora", "frozen_mlp")  # run CLIP's last block(s) per step
LINEAR_PIPELINES: tuple[str, ...] = ("linear_probe",)  # one linear layer: no z, g, stage 1
POOLS: tuple[str, ...] = ("cls", "tokens")
STANDARDIZE: tuple[str, ...] = ("none", "diag", "whiten", "auto")
PIPELINE_TITLES: dict[str, str] = {  # figure titles
    "lora": "Pipeline A (CLIP + LoRA)",
    "frozen_mlp": "frozen CLIP + MLP heads",
    "cached": "Pipeline B (cached CLIP + temporal transformer)",
    "linear_probe": "linear probe (pooled CLIP, one linear layer)",
}
WHITEN_EPS = 1e-4  # ZCA ridge, relative to the mean eigenvalue (chosen on validation)


def reads_block_cache(pipeline: str) -> bool:
    """Whether `pipeline` trains on the block cache (else on pooled CLIP frame features)."""
    return pipeline in BLOCK_PIPELINES


def has_contrastive_stage(pipeline: str) -> bool:
    """Whether stage 1 trains anything for `pipeline` (the linear probe has no z or g)."""
    return pipeline not in LINEAR_PIPELINES


def _check_choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} '{value}'; valid: {list(valid)}")


@params_section
class VAArchitecture:
    """The VA model's architecture knobs (`pretrain.model`; finetune keeps its checkpoint's).

    Choices are checked in `__post_init__`, not typed `Literal`: validation then keeps the given
    string object, so checkpoints pickle byte for byte as before (pickle memoises shared ones).
    """

    proj_hidden: int
    embed_dim: int
    reg_hidden: int
    tf_layers: int  # temporal transformer (cached pipeline only)
    tf_heads: int
    tf_ff: int
    dropout: float  # temporal transformer
    feature_dropout: float  # on frame features before the projector: fights identity fit
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    lora_targets: list[str]
    lora_blocks: list[int]  # negative: from the end
    pool: str  # lora/frozen_mlp frame feature: cls | tokens; pooled features are pooled already
    # frame features from training statistics (buffers): none | diag (mean, std) | whiten
    # (mean, ZCA) | auto (resolved before building: whiten when there are enough frames)
    standardize: str
    linear_path: bool  # linear map from frame features to VA beside the MLP head

    def __post_init__(self) -> None:
        if not self.lora_blocks:
            raise ValueError("lora_blocks is empty; name at least one block (e.g. [-1])")
        _check_choice("pool", self.pool, POOLS)
        _check_choice("standardize", self.standardize, STANDARDIZE)


@params_section
class VAModelConfig(VAArchitecture):
    """A VA model: its architecture plus what the variant and its input file fix; saved in
    every checkpoint (`record`)."""

    pipeline: str  # one of PIPELINES
    in_dim: int  # frame feature size: the backbone's hidden size

    def __post_init__(self) -> None:
        _check_choice("pipeline", self.pipeline, PIPELINES)
        super().__post_init__()

    @classmethod
    def build(cls, pipeline: str, in_dim: int, arch: VAArchitecture) -> VAModelConfig:
        return cls(pipeline=pipeline, in_dim=in_dim, **dataclasses.asdict(arch))

    def record(self) -> dict[str, Any]:
        """The mapping checkpoints hold: pipeline and in_dim first, as they always were."""
        values = dataclasses.asdict(self)
        return {"pipeline": values.pop("pipeline"), "in_dim": values.pop("in_dim"), **values}


def resolve_standardize(choice: str, feat_dim: int, n_frames: int) -> str:
    """`auto` -> `whiten` when the training frames are at least 4x the feature dimensions (a
    full-rank, well-estimated covariance: pooled CLIP vectors), `diag` otherwise (token grids).
    Whitening matters where the affect signal sits in low-variance directions of correlated
    features, which gradient descent on raw features barely reaches in a few hundred steps."""
    if choice != "auto":
        return choice
    return "whiten" if n_frames >= 4 * feat_dim else "diag"


def clip_layers(clip: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a CLIP vision model (transformers 5 and 4 layouts)."""
    inner = getattr(clip, "vision_model", clip)
    return inner.encoder.layers


def resolve_blocks(blocks: list[int], n_layers: int) -> list[int]:
    """Turn possibly negative block indices into sorted absolute ones, checking the range."""
    out = sorted({b % n_layers if -n_layers <= b < n_layers else -1 for b in blocks})
    if -1 in out:
        raise ValueError(f"lora_blocks {blocks} out of range for {n_layers} blocks")
    return out


def add_lora(clip: nn.Module, cfg: VAModelConfig) -> nn.Module:
    """Wrap `clip` with LoRA adapters on `cfg.lora_targets` of `cfg.lora_blocks` (peft)."""
    from peft import LoraConfig, get_peft_model

    blocks = resolve_blocks(cfg.lora_blocks, len(clip_layers(clip)))
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_targets),
        layers_to_transform=blocks,
        layers_pattern="layers",
    )
    with warnings.catch_warnings():  # peft calls a transformers API that 5.x deprecates
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        return get_peft_model(clip, lora)


def hidden_before(clip: nn.Module, pixel_values: Tensor, block: int) -> Tensor:
    """(N, 3, H, W) -> (N, T, W): CLIP's hidden states entering block `block` (T = patches + 1,
    CLS first), i.e. `hidden_states[block]` of a full forward pass."""
    inner = getattr(clip, "vision_model", clip)
    h = inner.pre_layrnorm(inner.embeddings(pixel_values))
    for layer in clip_layers(clip)[:block]:
        h = layer(h, None)
    return h


class VAModel(nn.Module):
    """Frame features -> (optional temporal transformer) -> z, g, per-frame VA."""

    def __init__(self, cfg: VAModelConfig, clip: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.backbone: nn.Module | None = None
        self.temporal: TemporalTransformer | None = None
        self.feat_dim = cfg.in_dim  # frame feature size the heads read
        if cfg.pipeline == "cached":
            self.temporal = TemporalTransformer(
                cfg.in_dim, cfg.tf_layers, cfg.tf_heads, cfg.tf_ff, cfg.dropout
            )
        elif reads_block_cache(cfg.pipeline):
            if clip is None:
                raise ValueError(f"pipeline '{cfg.pipeline}' needs the CLIP vision model")
            clip.requires_grad_(False)
            self.backbone = add_lora(clip, cfg) if cfg.pipeline == "lora" else clip
            n = len(clip_layers(self.clip))
            self.first_block = resolve_blocks(cfg.lora_blocks, n)[0]
            if cfg.pool == "tokens":
                side = int(clip.config.image_size) // int(clip.config.patch_size)
                self.feat_dim = (side * side + 1) * cfg.in_dim  # T * W
        if cfg.standardize == "auto":
            raise ValueError("standardize 'auto' must be resolved first (resolve_standardize)")
        d = self.feat_dim
        self.register_buffer("feat_mean", torch.zeros(d))
        # f -> (f - mean) * scale (diag, (D,)) or (f - mean) @ scale (whiten, (D, D))
        self.register_buffer(
            "feat_scale", torch.eye(d) if cfg.standardize == "whiten" else torch.ones(d)
        )
        self.feature_dropout = nn.Dropout(cfg.feature_dropout)
        self.regressor: nn.Module
        if not has_contrastive_stage(cfg.pipeline):  # linear probe: the standardised f -> VA
            self.regressor = LinearVA(self.feat_dim)
            return
        self.projector = FrameProjector(self.feat_dim, cfg.proj_hidden, cfg.embed_dim)
        self.temporal_head = TemporalHead(cfg.embed_dim)
        skip = self.feat_dim if cfg.linear_path else 0
        self.regressor = RegressionHead(cfg.embed_dim, cfg.reg_hidden, skip)

    @property
    def has_embeddings(self) -> bool:
        """Whether the model has a frame embedding z and clip embedding g (not the probe)."""
        return has_contrastive_stage(self.cfg.pipeline)

    @torch.no_grad()
    def set_feature_stats(self, mean: Tensor, second: Tensor, eps: float = 1e-3) -> None:
        """Store the training frames' feature mean and, for `diag`, their variance (D,) (std
        floored at `eps`: a dimension that barely moves in training must not be blown up on
        unseen faces) or, for `whiten`, their covariance (D, D) (ZCA with a ridge of
        `WHITEN_EPS` times the mean eigenvalue, for the same reason)."""
        want = tuple(self.feat_scale.shape)
        if tuple(mean.shape) != (self.feat_dim,) or tuple(second.shape) != want:
            raise ValueError(
                f"feature stats of shape {tuple(mean.shape)}/{tuple(second.shape)}, expected "
                f"({self.feat_dim},)/{want} for standardize '{self.cfg.standardize}'"
            )
        self.feat_mean.copy_(mean)
        if self.cfg.standardize == "whiten":
            lam, vec = torch.linalg.eigh(second.double())
            lam = lam.clamp_min(0.0)
            inv = (lam + WHITEN_EPS * lam.mean()).rsqrt()
            self.feat_scale.copy_((vec * inv) @ vec.T)  # V diag(inv) V^T
        else:
            self.feat_scale.copy_(second.clamp_min(0.0).sqrt().clamp_min(eps).reciprocal())

    @property
    def clip(self) -> nn.Module:
        """The CLIP vision model itself (with LoRA layers injected, if any)."""
        assert self.backbone is not None, f"pipeline '{self.cfg.pipeline}' has no backbone"
        get_base = getattr(self.backbone, "get_base_model", None)
        return get_base() if get_base is not None else self.backbone

    @torch.no_grad()
    def hidden_before(self, pixel_values: Tensor) -> Tensor:
        """Hidden states entering the first adapted block: what the training cache holds."""
        return hidden_before(self.clip, pixel_values, self.first_block)

    def run_blocks(self, h: Tensor) -> Tensor:
        """Adapted blocks + post-layernorm: (N, T, W) -> (N, W) CLS (`pool: cls`) or
        (N, T*W) every token (`pool: tokens`)."""
        clip = self.clip
        inner = getattr(clip, "vision_model", clip)
        for layer in clip_layers(clip)[self.first_block :]:
            h = layer(h, None)
        if self.cfg.pool == "tokens":
            return inner.post_layernorm(h).flatten(1)  # (N, T, W) -> (N, T*W)
        return inner.post_layernorm(h[:, 0])

    def encode(self, x: Tensor) -> Tensor:
        """Frame features from the training inputs.

        lora/frozen_mlp: x (B, L, T*W) cached hidden states (flattened by the store) -> (B, L,
        D), D = W (`pool: cls`) or T*W (`pool: tokens`); cached/linear_probe: x (B, L, D) is
        already the feature.
        """
        if self.backbone is None:
            return x.float()
        b, n = x.shape[:2]
        w = self.cfg.in_dim
        h = x.reshape(b * n, -1, w).to(self.projector.net[0].weight.dtype)  # (B*L, T, W)
        return self.run_blocks(h).reshape(b, n, -1)  # (B, L, D)

    def encode_pixels(self, pixel_values: Tensor) -> Tensor:
        """Full backbone on images: (B, L, 3, H, W) -> (B, L, D). Same result as `encode` on
        `hidden_before` of the same images."""
        b, n = pixel_values.shape[:2]
        h = self.hidden_before(pixel_values.flatten(0, 1))  # (B*L, T, W)
        return self.run_blocks(h).reshape(b, n, -1)

    def heads(self, f: Tensor, valid: Tensor) -> dict[str, Tensor]:
        """Frame features (B, L, D) -> f (standardised), z (B, L, E), g (B, E), va (B, L, 2);
        the linear probe gives f and va only."""
        if self.cfg.standardize == "diag":
            f = (f - self.feat_mean) * self.feat_scale  # (B, L, D) - (D,)
        elif self.cfg.standardize == "whiten":
            f = (f - self.feat_mean) @ self.feat_scale  # (B, L, D) @ (D, D)
        if not self.has_embeddings:
            return {"f": f, "va": self.regressor(f)}
        if self.temporal is not None:
            f = self.temporal(f, valid)
        fd = self.feature_dropout(f)
        z = self.projector(fd)
        g = self.temporal_head(z, valid)
        va = self.regressor(z + g[:, None], fd)  # (B, L, E) + (B, 1, E): frame in clip context
        return {"f": f, "z": z, "g": g, "va": va}

    def forward(self, x: Tensor, valid: Tensor) -> dict[str, Tensor]:
        return self.heads(self.encode(x), valid)

    def checkpoint_state(self) -> dict[str, Tensor]:
        """The state worth saving: heads, temporal layers and LoRA weights, not the frozen
        backbone (rebuilt from its spec and checked by config hash on load)."""
        return {
            k: v
            for k, v in self.state_dict().items()
            if not k.startswith("backbone.") or "lora_" in k
        }

    def load_checkpoint_state(self, state: dict[str, Tensor]) -> None:
        """Load `checkpoint_state()` output; anything missing outside the backbone is an error."""
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("backbone.") or "lora_" in k]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"checkpoint does not fit the model: missing {missing}, "
                f"unexpected {result.unexpected_keys}"
            )

    def trainable_parameters(self, names: tuple[str, ...]) -> list[str]:
        """Freeze everything except the named parts ('lora', 'temporal', 'projector',
        'temporal_head', 'regressor'); return the names of the trainable tensors."""
        valid = ("lora", "temporal", "projector", "temporal_head", "regressor")
        unknown = sorted(set(names) - set(valid))
        if unknown:
            raise ValueError(f"unknown trainable part(s) {unknown}; valid: {list(valid)}")
        out = []
        for name, p in self.named_parameters():
            part = "lora" if "lora_" in name else name.split(".")[0]
            p.requires_grad_(part in names)
            if p.requires_grad:
                out.append(name)
        return out
