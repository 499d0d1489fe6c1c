"""Frozen backbones, loaded the one way transformers loads models: `from_pretrained`.

A spec is a Hugging Face model id, a local folder in that format, or `tiny`: a seeded, randomly
initialised small config of the *same* architecture class (so LoRA on `q_proj`/`v_proj` of the
last block works exactly as on the real model). `tiny` is saved once with `save_pretrained` into
a cache folder and loaded back through `from_pretrained`, so the offline default run exercises
the real loading path. `real_size` builds the real architectures with random weights, for
benchmarks: same compute as the released checkpoints, no download.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers as tf

from affectpipe.features.pixels import ImagePixels

KINDS: tuple[str, ...] = ("clip", "videomae", "wav2vec2")
PRESETS: tuple[str, ...] = ("tiny",)
CACHE_ENV = "AFFECTPIPE_CACHE"
TINY_SEED = 0

# The classes each kind loads through; the model is always the bare encoder.
_MODEL_CLASS: dict[str, type[tf.PreTrainedModel]] = {
    "clip": tf.CLIPVisionModel,
    "videomae": tf.VideoMAEModel,
    "wav2vec2": tf.Wav2Vec2Model,
}


class BackboneUnavailable(OSError, ValueError):
    """The spec names a model that cannot be loaded here (no network, no such folder).

    Also a ValueError (like `io.UnsupportedOperation`), so stage scripts report it in one line.
    """


@dataclass
class Backbone:
    """A loaded, frozen backbone ready for inference."""

    kind: str  # "clip" | "videomae" | "wav2vec2"
    spec: str  # what params said: "tiny", an HF id, or a local folder
    model: torch.nn.Module  # CLIPVisionModel / VideoMAEModel / Wav2Vec2Model, eval(), frozen
    processor: Any  # the backbone's own transformers image processor / feature extractor
    dim: int  # embedding size
    config_hash: str  # sha256 of the model config JSON (sorted keys), for provenance
    weights_hash: str  # sha256 of the weights as loaded (`weights_hash`): same config, new weights
    # uint8 (N, H, W, 3) frames -> (N, 3, h, w) pixel_values, as `processor` makes them; the
    # image backbones only (see `pixels`)
    pixels: ImagePixels | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.pixels = None if self.kind == "wav2vec2" else ImagePixels(self.kind, self.processor)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def resolve_device(preference: str = "auto") -> torch.device:
    """`auto` -> CUDA when present, else CPU; anything else is passed to `torch.device`."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as e:
        raise ValueError(f"unknown device '{preference}'; valid: auto, cpu, cuda, cuda:N") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{preference}' requested but CUDA is not available here")
    return device


def config_hash(config: tf.PretrainedConfig) -> str:
    """sha256 of the architecture-defining config (sorted keys).

    Keys that say where or by which library version a model was saved (`_name_or_path`,
    `transformers_version`, dtype, attention implementation) are left out: the same weights
    loaded from a hub id or a local copy must hash the same.
    """
    d = config.to_dict()
    drop = {"transformers_version", "dtype", "torch_dtype", "architectures"}
    d = {k: v for k, v in d.items() if not k.startswith("_") and k not in drop}
    blob = json.dumps(d, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 of the state dict as loaded: names, dtypes, shapes and raw bytes, sorted by name.

    The config hash alone passes a retrained or swapped checkpoint of the same architecture;
    this does not. Hashing the tensors rather than the files gives one value for a hub id and
    a local copy of it (about 1 s per 500 MB)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown backbone kind '{kind}'; valid kinds: {list(KINDS)}")


def tiny_config(kind: str) -> tf.PretrainedConfig:
    """Small configs of the real architectures: a few layers, 64-wide, fast on 2 CPU cores."""
    _check_kind(kind)
    if kind == "clip":
        return tf.CLIPVisionConfig(
            image_size=64,
            patch_size=16,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            projection_dim=64,
        )
    if kind == "videomae":
        return tf.VideoMAEConfig(
            image_size=64,  # 4x4 patches: at 32 px the drawn expressions do not survive
            patch_size=16,
            num_frames=16,
            tubelet_size=2,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
        )
    # Layer-norm feature encoder (the wav2vec2-large-lv60 family): padding is masked exactly.
    return tf.Wav2Vec2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        conv_dim=(32, 32, 32),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 8, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        vocab_size=32,
    )


def real_size_config(kind: str) -> tf.PretrainedConfig:
    """The released architectures' configs (ViT-B/32, VideoMAE-base, wav2vec2-base)."""
    _check_kind(kind)
    return {
        "clip": tf.CLIPVisionConfig,  # defaults = ViT-B/32 image tower
        "videomae": tf.VideoMAEConfig,  # defaults = videomae-base, 16x224x224
        "wav2vec2": tf.Wav2Vec2Config,  # defaults = wav2vec2-base (group-norm conv stack)
    }[kind]()


def default_processor(kind: str, config: tf.PretrainedConfig) -> Any:
    """The backbone's own processor, sized for `config` (PIL backend: same numbers everywhere)."""
    _check_kind(kind)
    if kind == "wav2vec2":
        layer_norm = config.feat_extract_norm == "layer"
        return tf.Wav2Vec2FeatureExtractor(return_attention_mask=layer_norm, do_normalize=True)
    side = config.image_size
    size = {"shortest_edge": side}
    crop = {"height": side, "width": side}
    if kind == "clip":
        return tf.CLIPImageProcessorPil(size=size, crop_size=crop)
    return tf.VideoMAEImageProcessorPil(size=size, crop_size=crop)


def _freeze(model: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    model.eval().requires_grad_(False)
    return model.to(device)


def _cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "affectpipe"))


def tiny_folder(kind: str) -> Path:
    """Build the tiny preset once (seeded) and return its HF-format folder.

    The folder name carries the config hash, so a changed preset never reuses an old folder.
    Written to a temporary folder and renamed, so concurrent processes cannot see half a save.
    """
    config = tiny_config(kind)
    folder = _cache_root() / "tiny" / f"{kind}-{config_hash(config)[:12]}"
    if (folder / "config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=folder.parent))
    tmp.chmod(0o755)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = _MODEL_CLASS[kind](config)
    model.save_pretrained(tmp)
    default_processor(kind, config).save_pretrained(tmp)
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first: theirs is byte-identical
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _load_processor(kind: str, source: str) -> Any:
    if kind == "wav2vec2":
        return tf.AutoFeatureExtractor.from_pretrained(source)
    return tf.AutoImageProcessor.from_pretrained(source, backend="pil")


def processor_side(processor: Any) -> int:
    """The side of the square images `processor` passes to its model unresampled: the size it
    resizes to (`size.shortest_edge`, or `size` height = width), else its center crop's side.
    CLIP ViT-B/32 and VideoMAE-base: 224; the `tiny` presets: their `image_size`."""
    d = processor.to_dict()
    size, crop = d.get("size") or {}, d.get("crop_size") or {}
    if d.get("do_resize") and "shortest_edge" in size:
        return int(size["shortest_edge"])
    sides = {"height", "width"}
    if d.get("do_resize") and sides <= set(size) and size["height"] == size["width"]:
        return int(size["height"])
    if d.get("do_center_crop") and sides <= set(crop) and crop["height"] == crop["width"]:
        return int(crop["height"])
    raise ValueError(
        f"{type(processor).__name__} has no square input size (size {size}, crop_size {crop})"
    )


def input_size(kind: str, spec: str) -> int:
    """`processor_side` of the processor `load_backbone(kind, spec)` would use, read from its
    config alone: no weights are loaded or built (`tiny`: the preset's own processor)."""
    _check_kind(kind)
    if kind == "wav2vec2":
        raise ValueError("wav2vec2 takes audio: it has no image input size")
    if spec == "tiny":
        return processor_side(default_processor(kind, tiny_config(kind)))
    try:
        processor = _load_processor(kind, spec)
    except (OSError, ValueError) as e:
        raise _offline_hint(kind, spec, e) from None
    return processor_side(processor)


def _offline() -> bool:
    """Whether the hub is offline as huggingface_hub sees it (read when it was imported)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _offline_hint(kind: str, spec: str, error: Exception) -> BackboneUnavailable:
    hub = (
        " (offline: HF_HUB_OFFLINE=1, the default; HF_HUB_OFFLINE=0 downloads)"
        if _offline()
        else ""
    )
    return BackboneUnavailable(
        f"cannot load {kind} backbone '{spec}' ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else 'no detail'}). "
        f"It is neither a local folder nor reachable on the Hugging Face hub{hub}. To run offline, "
        f"set the spec to 'tiny' (a small random model of the same architecture), or download "
        f"'{spec}' on a machine with network access (e.g. `hf download {spec} --local-dir DIR`) "
        f"and set the spec to that folder."
    )


def load_backbone(kind: str, spec: str, device: str | torch.device = "cpu") -> Backbone:
    """Load `spec` ('tiny', a hub id or a local folder) as a frozen `kind` encoder on `device`."""
    _check_kind(kind)
    source = str(tiny_folder(kind)) if spec == "tiny" else spec
    quiet = Path(source).is_dir() and tf.logging.is_progress_bar_enabled()
    if quiet:  # a "Loading weights" bar per local load buries the logs; downloads keep theirs
        tf.logging.disable_progress_bar()
    try:
        model = _MODEL_CLASS[kind].from_pretrained(source)
        processor = _load_processor(kind, source)
    except (OSError, ValueError) as e:
        raise _offline_hint(kind, spec, e) from None
    finally:
        if quiet:
            tf.logging.enable_progress_bar()
    return Backbone(
        kind=kind,
        spec=spec,
        model=_freeze(model, device),
        processor=processor,
        dim=int(model.config.hidden_size),
        config_hash=config_hash(model.config),
        weights_hash=weights_hash(model),
    )


def real_size(kind: str, device: str | torch.device = "cpu", seed: int = 0) -> Backbone:
    """The real architecture with random weights (no download): for throughput benchmarks."""
    config = real_size_config(kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _MODEL_CLASS[kind](config)
    return Backbone(
        kind=kind,
        spec="real-size",
        model=_freeze(model, device),
        processor=default_processor(kind, config),
        dim=int(config.hidden_size),
        config_hash=config_hash(config),
        weights_hash=weights_hash(model),
    )


def save_real_size(kind: str, folder: Path, seed: int = 0) -> Path:
    """`real_size` saved as a Hugging Face folder: a spec the stages load like a released model,
    for real-size runs where the hub is unreachable."""
    b = real_size(kind, seed=seed)
    b.model.save_pretrained(folder)
    b.processor.save_pretrained(folder)
    return folder
