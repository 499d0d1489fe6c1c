"""Trained models and their backbones, rebuilt from checkpoints for inference on new videos.

A checkpoint names the backbone its features came from (spec and config hash, in its
provenance); the backbone is loaded from that spec and its hash must match, so predictions use
exactly the encoder the heads were trained on. Frames and audio go through the pipeline's own
preprocessing (`data.framecrop`, `data.media`) and embedding functions (`features.embed`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectpipe.features import embed as E
from affectpipe.features.backbones import Backbone, load_backbone
from affectpipe.problems import InputProblem


class ProvenanceMismatch(ValueError):
    """A checkpoint's backbone provenance does not match the backbone that loads from its spec."""


def backbone_provenance(provenance: dict[str, Any], kind: str, source: Path) -> dict[str, Any]:
    """The `{backbone, spec, config_hash, ...}` entry for `kind`, searched one level deep."""
    candidates = [provenance, *[v for v in provenance.values() if isinstance(v, dict)]]
    for entry in candidates:
        if entry.get("backbone") == kind and "spec" in entry and "config_hash" in entry:
            return entry
    raise InputProblem(source, f"checkpoint provenance names no '{kind}' backbone (spec and "
                               f"config_hash); has keys {sorted(provenance)}")  # fmt: skip


def load_checked_backbone(entry: dict[str, Any], device: torch.device, source: Path) -> Backbone:
    """Load the backbone a checkpoint was trained on; a different config hash is an error."""
    backbone = load_backbone(entry["backbone"], entry["spec"], device)
    if backbone.config_hash != entry["config_hash"]:
        raise ProvenanceMismatch(
            f"{source}: trained on {entry['backbone']} '{entry['spec']}' with config hash "
            f"{entry['config_hash'][:12]}, but that spec now loads a backbone with hash "
            f"{backbone.config_hash[:12]}; re-extract features and retrain, or point the spec "
            f"at the original model"
        )
    return backbone


def entry_dtype(entry: dict[str, Any], device: torch.device) -> torch.dtype:
    """The compute dtype the features were extracted with (`auto` when not recorded)."""
    return E.compute_dtype(str(entry.get("dtype", "auto")), device)


def load_embedder(
    entry: dict[str, Any], device: torch.device, source: Path
) -> tuple[Backbone, torch.dtype]:
    """A frozen backbone with its weights cast as `extract` cast them: the same embeddings."""
    backbone = load_checked_backbone(entry, device, source)
    dtype = entry_dtype(entry, device)
    E.cast_frozen(backbone.model, dtype)
    return backbone, dtype


@torch.inference_mode()
def embed_images(backbone: Backbone, images: np.ndarray, dtype: torch.dtype,
                 batch_size: int = 32) -> torch.Tensor:  # fmt: skip
    """CLIP frame embeddings as the extract stage computes them: (T, H, W, 3) -> (T, D)."""
    out = []
    for start in range(0, len(images), batch_size):
        pixels = E.pixel_values(backbone, images[start : start + batch_size])
        with E.autocast(backbone.device, dtype):
            out.append(E.embed_clip(backbone.model, pixels))
    return torch.cat(out)


@torch.inference_mode()
def embed_clip_video(backbone: Backbone, frames: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """VideoMAE clip embedding: (T, H, W, 3) crops -> (D,), frames picked as `embed` does."""
    num = int(backbone.model.config.num_frames)
    pixels = E.pixel_values(backbone, frames[E.sample_indices(len(frames), num)])  # (1, T, ...)
    with E.autocast(backbone.device, dtype):
        return E.embed_videomae(backbone.model, pixels)[0]


@torch.inference_mode()
def embed_voice(
    backbone: Backbone, wave: np.ndarray, layer: int, dtype: torch.dtype
) -> torch.Tensor:
    """wav2vec2 utterance embedding of 16 kHz mono samples: (S,) -> (D,)."""
    proc = backbone.processor
    inputs = proc([wave], sampling_rate=proc.sampling_rate, padding=True,
                  return_attention_mask=True, return_tensors="pt")  # fmt: skip
    with E.autocast(backbone.device, dtype):
        emb = E.embed_wav2vec2(backbone.model, inputs["input_values"].to(backbone.device),
                               inputs["attention_mask"].to(backbone.device), layer)  # fmt: skip
    return emb[0]


def _dataclass_kwargs(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of a saved config that `cls` takes (a checkpoint may store more)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def sliding_va(model: torch.nn.Module, f: torch.Tensor, length: int, stride: int) -> torch.Tensor:
    """Per-frame VA averaged over overlapping windows, as evaluation does: (T, D) -> (T, 2)."""
    from affectpipe.train.windows import window_starts

    n = f.shape[0]
    total = torch.zeros(n, 2, device=f.device)
    count = torch.zeros(n, 1, device=f.device)
    for s in window_starts(n, length, stride):
        x = f[s : s + length][None]  # (1, L, D)
        valid = torch.ones(x.shape[:2], dtype=torch.bool, device=f.device)  # (1, L)
        total[s : s + length] += model.heads(x, valid)["va"][0].float()  # (L, 2)
        count[s : s + length] += 1
    return total / count


@dataclass
class VASettings:
    """How frames reach the VA model: face crop as AFEW-VA preprocessing, windows as evaluation."""

    crop: str = "foreground"  # foreground (cheap face box, centre if none) | center
    crop_size: int = 64  # preprocess.afewva.crop_size
    margin: float = 0.25  # preprocess.afewva.margin
    window: int = 16  # frames per window (finetune window length)
    stride: int = 8  # sliding-window step


def window_settings(settings: VASettings, window: dict[str, Any]) -> VASettings:
    """The checkpoint's own window length and evaluation stride override the defaults."""
    import dataclasses

    return dataclasses.replace(
        settings,
        window=int(window.get("length", settings.window)),
        stride=int(window.get("eval_stride", settings.stride)),
    )


def recorded_settings(entry: dict[str, Any], base: Any) -> Any:
    """`base` (VASettings or AVSettings) with what the checkpoint's inputs record in place.

    Features and checkpoints carry the dataset's preprocessing (`source_settings`: crop size,
    margin, frames, sample rate...), so a video is prepared as the training data was, whatever
    params.yaml says now; `base` (params.yaml or the defaults) fills what older checkpoints lack.
    """
    import dataclasses

    recorded = json.loads(entry.get("source_settings") or "{}")
    return dataclasses.replace(base, **_dataclass_kwargs(type(base), recorded))


class VAEngine:
    """Per-frame valence/arousal from a `models/finetune/<variant>/` checkpoint."""

    def __init__(self, ckpt_dir: Path, device: torch.device, settings: VASettings | None = None):
        from affectpipe.models.va import VAModel, VAModelConfig
        from affectpipe.train.checkpoint import load_checkpoint

        payload = load_checkpoint(ckpt_dir, map_location=device)
        self.source = Path(ckpt_dir)
        self.provenance = payload["provenance"]
        config = payload["config"]  # {"model": ..., "window": ..., ...} as `train.va` saves it
        cfg = VAModelConfig(**config.get("model", config))
        entry = backbone_provenance(self.provenance, "clip", self.source)
        settings = recorded_settings(entry, settings or VASettings())
        self.settings = window_settings(settings, config.get("window", {}))
        if cfg.pipeline == "cached":  # CLIP only embeds frames, as in `extract`
            self.backbone, self.dtype = load_embedder(entry, device, self.source)
        else:  # the adapted encoder is part of the trained model
            self.backbone = load_checked_backbone(entry, device, self.source)
            self.dtype = entry_dtype(entry, device)
        clip = None if cfg.pipeline == "cached" else self.backbone.model
        self.model = VAModel(cfg, clip=clip).to(device).eval()
        self.model.load_checkpoint_state(payload["state_dict"])

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W, 3) frames of one video -> (T, 2) valence, arousal in [-1, 1]."""
        from affectpipe.data.framecrop import crop_clip

        s = self.settings
        crops, _ = crop_clip(frames, s.crop, s.crop_size, s.margin)
        if self.model.backbone is None:  # cached: frozen CLIP features, as extracted
            f = embed_images(self.backbone, crops, self.dtype)  # (T, D)
        else:  # lora / probe: the adapted encoder itself
            x = E.pixel_values(self.backbone, crops)[None]  # (1, T, 3, H, W)
            f = self.model.encode_pixels(x)[0].float()  # (T, D)
        return sliding_va(self.model, f.float(), s.window, s.stride).cpu().numpy()


@dataclass
class AVSettings:
    """How a video reaches the face/voice models: as RAVDESS/CREMA-D preprocessing did."""

    n_frames: int = 16
    frame_size: int = 112
    crop: str = "foreground"
    margin: float = 0.1
    decode_max_side: int = 480
    sample_rate: int = 16000
    silence_db: float = -60.0
    layer: int = -1  # wav2vec2 hidden_states index (extract.wav2vec2.layer)


class AVEngine:
    """Face, voice and fused emotion and congruence from `models/multimodal/<model>_<dataset>/`."""

    def __init__(self, ckpt_dir: Path, device: torch.device, settings: AVSettings | None = None):
        from affectpipe.models.load import load_av_model

        self.model, payload = load_av_model(ckpt_dir, map_location=device)
        self.source = Path(ckpt_dir)
        self.settings = settings or AVSettings()
        self.provenance = payload["provenance"]
        self.face = self.voice = None
        if self.model.uses_face:
            entry = backbone_provenance(self.provenance, "videomae", self.source)
            self.face, self.face_dtype = load_embedder(entry, device, self.source)
            self.settings = recorded_settings(entry, self.settings)
        if self.model.uses_voice:
            entry = backbone_provenance(self.provenance, "wav2vec2", self.source)
            self.voice, self.voice_dtype = load_embedder(entry, device, self.source)
            self.settings = recorded_settings(entry, self.settings)
            extracted = json.loads(entry.get("preprocessing") or "{}")
            self.layer = int(extracted.get("layer", self.settings.layer))

    @property
    def modality(self) -> str:
        return self.model.cfg.modality

    def face_embedding(self, frames: np.ndarray) -> torch.Tensor:
        """`n_frames` evenly sampled decoded frames (T, H, W, 3) -> (1, D) after face crop."""
        from affectpipe.data.framecrop import crop_clip

        s = self.settings
        crops, _ = crop_clip(frames, s.crop, s.frame_size, s.margin)
        return embed_clip_video(self.face, crops, self.face_dtype)[None].float()

    def voice_embedding(self, wave: np.ndarray) -> torch.Tensor:
        return embed_voice(self.voice, wave, self.layer, self.voice_dtype)[None].float()

    @torch.inference_mode()
    def __call__(self, face: torch.Tensor | None, voice: torch.Tensor | None) -> dict[str, Any]:
        """Probabilities (numpy) of every head the inputs allow: `emotion`, `face_emotion`,
        `voice_emotion` (8,), `congruence` (scalar). The fused heads need both modalities, and
        only the fusion model has them (a baseline's `emotion` is its modality head)."""
        from affectpipe.models.multimodal import head_probabilities

        m = self.model
        if not (m.uses_face and face is not None or m.uses_voice and voice is not None):
            return {}
        probs = head_probabilities(m(face=face, voice=voice))
        out: dict[str, Any] = {
            k: p[0].cpu().numpy()
            for k, p in probs.items()
            if k != "congruence" and (k != "emotion" or self.modality == "fusion")
        }
        if "congruence" in probs:
            out["congruence"] = float(probs["congruence"][0])
        return out
