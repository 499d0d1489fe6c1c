"""Trained models and their backbones, rebuilt from checkpoints for inference on new videos.

Models come back through `models.load`, with the backbone their checkpoint names (spec and
config hash must match, else `ProvenanceMismatch`). Frames and audio go through the pipeline's
own preprocessing (`data.framecrop`, `data.media`) and embedding functions (`features.embed`),
and VA windows are averaged per frame as evaluation averages them (`va_inference.video_va`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectpipe.config import ConfigError, from_section, params_section
from affectpipe.data.media import sample_indices
from affectpipe.features import embed as E
from affectpipe.features.backbones import Backbone
from affectpipe.models.load import backbone_provenance, load_checked_backbone


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
    pixels = E.pixel_values(backbone, frames[sample_indices(len(frames), num)])  # (1, T, ...)
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
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


VA_CROP = "foreground"  # no landmarks in a user's video: the plain-background face box stands in


@params_section
class VASettings:
    """How frames reach the VA model: the face crop of AFEW-VA preprocessing
    (`preprocess.afewva`), which the checkpoints also record."""

    crop_size: int
    margin: float


def va_settings(entry: dict[str, Any], base: VASettings | None, source: Path) -> VASettings:
    """What the checkpoint's inputs record, over `base` (params.yaml), which fills what older
    checkpoints lack; with neither, a `ConfigError` names the missing key."""
    names = [f.name for f in dataclasses.fields(VASettings)]
    recorded = json.loads(entry.get("source_settings") or "{}")
    values = (dataclasses.asdict(base) if base is not None else {}) | {
        k: v for k, v in recorded.items() if k in names
    }
    try:
        return from_section(VASettings, values, "preprocess.afewva")
    except ConfigError as err:
        raise ConfigError(
            f"{source} records no VA preprocessing and no params file gives it: {err}"
        ) from None


def recorded_settings(entry: dict[str, Any], base: Any) -> Any:
    """`base` (AVSettings) with what the checkpoint's inputs record in place.

    Features and checkpoints carry the dataset's preprocessing (`source_settings`: crop size,
    margin, frames, sample rate...), so a video is prepared as the training data was, whatever
    params.yaml says now; `base` (params.yaml or the defaults) fills what older checkpoints lack.
    """
    recorded = json.loads(entry.get("source_settings") or "{}")
    return dataclasses.replace(base, **_dataclass_kwargs(type(base), recorded))


class VAEngine:
    """Per-frame valence/arousal from a `models/finetune/<variant>/` checkpoint."""

    def __init__(self, ckpt_dir: Path, device: torch.device, settings: VASettings | None):
        from affectpipe.data.windows import WindowConfig
        from affectpipe.models.checkpoint import load_checkpoint
        from affectpipe.models.load import va_model_from

        payload = load_checkpoint(ckpt_dir, map_location=device)
        self.source = Path(ckpt_dir)
        self.provenance = payload["provenance"]
        entry = backbone_provenance(self.provenance, "clip", self.source)
        self.settings = va_settings(entry, settings, self.source)
        self.window = from_section(WindowConfig, payload["config"]["window"], f"{ckpt_dir}: window")
        if payload["config"]["model"]["pipeline"] == "cached":  # CLIP embeds frames, as extract
            self.backbone, self.dtype = load_embedder(entry, device, self.source)
            self.model = va_model_from(payload, self.source, device)
        else:  # the adapted encoder is part of the trained model
            self.backbone = load_checked_backbone(entry, device, self.source)
            self.dtype = entry_dtype(entry, device)
            self.model = va_model_from(payload, self.source, device, self.backbone)
        self.model.eval()

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W, 3) frames of one video -> (T, 2) valence, arousal in [-1, 1]."""
        from affectpipe.data.framecrop import crop_clip
        from affectpipe.va_inference import video_va

        s = self.settings
        crops, _ = crop_clip(frames, VA_CROP, s.crop_size, s.margin)
        if self.model.backbone is None:  # cached: frozen CLIP features, as extracted
            f = embed_images(self.backbone, crops, self.dtype)  # (T, D)
        else:  # lora / probe: the adapted encoder itself
            x = E.pixel_values(self.backbone, crops)[None]  # (1, T, 3, H, W)
            f = self.model.encode_pixels(x)[0].float()  # (T, D)
        return video_va(self.model, f.float(), self.window)


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
