"""Turning files into model inputs (the backbone's processor settings) and outputs into embeddings.

- CLIP: `pooler_output` of `CLIPVisionModel` (the post-layer-norm CLS token), one per frame.
- VideoMAE: the mean of the final hidden states over *all* tokens. VideoMAE has no CLS token
  (every token is a space-time patch), and its own classifier pools the same way
  (`use_mean_pooling`, Tong et al. 2022), so token 0 is just the top-left patch of frames 0-1.
- wav2vec2: the attention-masked mean over time of *every* hidden state (the CNN features'
  projection and each transformer layer: L + 1 vectors), so padding added to batch utterances
  of different lengths never enters the average; which layer a model reads is its training
  choice (`train_multimodal.voice_layers`), not the extraction's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from affectpipe.data.media import sample_indices
from affectpipe.features.backbones import Backbone
from affectpipe.features.sources import Item
from affectpipe.problems import InputProblem

POOLING = {
    "clip": "pooler_output (post-layernorm CLS), CLIPVisionModel",
    "videomae": "mean of last_hidden_state over all tokens",
    "wav2vec2": "attention-masked mean over time of every hidden state, (L + 1, D)",
}


def _image(item: Item) -> np.ndarray:
    if item.index >= 0:  # one row of a (T, H, W, 3) frames file
        return np.array(np.load(item.path, mmap_mode="r")[item.index])
    with Image.open(item.path) as im:
        return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def _video(item: Item, num_frames: int) -> np.ndarray:
    frames = np.load(item.path, mmap_mode="r")  # (T, H, W, 3) uint8
    return np.array(frames[sample_indices(len(frames), num_frames)])


def _audio(item: Item) -> np.ndarray:
    wave, _ = sf.read(item.path, dtype="float32", always_2d=False)
    return wave


def decode(
    kind: str, processor: Any, items: Sequence[Item], num_frames: int = 16, threads: int = 1
) -> dict:
    """Read `items` from disk, on `threads` threads (the decoders release the GIL).

    Images and videos come back as uint8 `frames`, (N, H, W, 3) when they share a size (a
    video's `num_frames` sampled frames one after another); `model_inputs` turns them into
    pixels on the model's side, batched. Audio comes back through the feature extractor, whose
    zero-mean unit-variance normalisation costs little.
    """
    read = {"clip": _image, "videomae": lambda i: _video(i, num_frames), "wav2vec2": _audio}[kind]
    try:
        if threads > 1:
            with ThreadPoolExecutor(min(threads, len(items))) as pool:
                decoded = list(pool.map(read, items))
        else:
            decoded = [read(i) for i in items]
    except (OSError, ValueError, RuntimeError) as e:
        paths = sorted({i.path for i in items})
        raise InputProblem(
            paths[0], f"cannot decode ({type(e).__name__}: {e}); batch of {len(paths)} file(s)"
        ) from e
    if kind == "wav2vec2":
        inputs = processor(
            decoded,
            sampling_rate=processor.sampling_rate,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        return {"input_values": inputs["input_values"], "attention_mask": inputs["attention_mask"]}
    frames = decoded if kind == "clip" else [f for video in decoded for f in video]
    if len({f.shape for f in frames}) == 1:  # the usual case: one size per dataset
        return {"frames": torch.from_numpy(np.stack(frames))}
    return {"frames": [torch.from_numpy(np.array(f)) for f in frames]}


def model_inputs(backbone: Backbone, decoded: dict) -> dict[str, torch.Tensor]:
    """A `decode`d batch -> the model's keyword inputs, on its device."""
    device = backbone.device
    if "frames" not in decoded:
        return {k: v.to(device, non_blocking=True) for k, v in decoded.items()}
    frames = decoded["frames"]
    if backbone.pixels.batched is not None:  # made on the model's device (the fallback: on CPU)
        if isinstance(frames, torch.Tensor):
            frames = frames.to(device, non_blocking=True)
        else:
            frames = [f.to(device, non_blocking=True) for f in frames]
    with torch.autocast(device.type, enabled=False):  # pixels are made in float32
        pixels = backbone.pixels(frames).to(device)
    if backbone.kind == "videomae":  # (B * T, 3, H, W) -> (B, T, 3, H, W)
        pixels = pixels.view(-1, int(backbone.model.config.num_frames), *pixels.shape[1:])
    return {"pixel_values": pixels}


def pixel_values(backbone: Backbone, frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) frames -> the model's `pixel_values` on its device, as `extract` makes
    them ((N, 3, h, w); VideoMAE: N / num_frames clips, (B, T, 3, h, w))."""
    decoded = {"frames": torch.from_numpy(np.ascontiguousarray(frames))}
    return model_inputs(backbone, decoded)["pixel_values"]


def prepare(backbone: Backbone, items: Sequence[Item]) -> dict[str, torch.Tensor]:
    """`decode` then `model_inputs` in one process: for small jobs and tests."""
    num_frames = int(getattr(backbone.model.config, "num_frames", 16))
    return model_inputs(backbone, decode(backbone.kind, backbone.processor, items, num_frames))


def embed_clip(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, D)."""
    return model(pixel_values=pixel_values).pooler_output.float()


def embed_videomae(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B, D): mean over N = T/tubelet * (H/p) * (W/p) tokens."""
    hidden = model(pixel_values=pixel_values).last_hidden_state  # (B, N, D)
    return hidden.float().mean(dim=1)


def embed_wav2vec2(
    model: torch.nn.Module, input_values: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """(B, S) samples + (B, S) mask -> (B, L + 1, D), the masked mean of each hidden state.

    Only layer-norm feature encoders take the attention mask; the group-norm ones
    (wav2vec2-base) normalise over the whole padded signal, so their batches must hold
    utterances of one length (see `shards.plan_batches`) and get no mask, as HF advises.
    """
    takes_mask = model.config.feat_extract_norm == "layer"
    out = model(
        input_values,
        attention_mask=attention_mask if takes_mask else None,
        output_hidden_states=True,
    )
    hidden = torch.stack(out.hidden_states, dim=1).float()  # (B, L + 1, T', D)
    frames = model._get_feature_vector_attention_mask(hidden.shape[2], attention_mask)  # (B, T')
    weights = frames.to(hidden.dtype)[:, None, :, None]  # (B, 1, T', 1)
    return (hidden * weights).sum(dim=2) / weights.sum(dim=2).clamp(min=1.0)


def embed(kind: str, model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """Embeddings float32 for one prepared batch, on the model's device: (B, D); wav2vec2
    (B, L + 1, D), one per hidden state."""
    if kind == "clip":
        return embed_clip(model, inputs["pixel_values"])
    if kind == "videomae":
        return embed_videomae(model, inputs["pixel_values"])
    return embed_wav2vec2(model, inputs["input_values"], inputs["attention_mask"])


def compute_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 (AMX on CPU; CUDA with bf16 support), else fp16 on older GPUs."""
    valid = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name == "auto":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if name not in valid:
        raise ValueError(f"unknown dtype '{name}'; valid: {['auto', *valid]}")
    return valid[name]


def cast_frozen(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Store a frozen model's weights in `dtype` once, for inference under `autocast`.

    Autocast re-casts fp32 weights to bf16 on every forward pass (for ViT-B/32, ~88M values
    read and written per batch), and with fp32 norm weights CLIP's residual stream, layer norms
    and QuickGELU stay fp32 between its bf16 matmuls, a cast before and after each. In bf16
    (fp32's exponent range) every weight is cast and the whole pass stays bf16, norms and
    softmax still accumulating in fp32 inside their kernels: CLIP ViT-B/32 runs about 15%
    faster on an AMX CPU, and embeddings match fp32 to cosine > 0.999 (tested for all three
    backbones). fp16 overflows where bf16 does not, so under fp16 only the Linear weights are
    cast and autocast keeps norms in fp32.
    """
    if dtype == torch.bfloat16:
        model.to(dtype)
    elif dtype != torch.float32:
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(dtype)
    return model


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision around the forward pass (with `cast_frozen` weights: no per-pass casts)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
