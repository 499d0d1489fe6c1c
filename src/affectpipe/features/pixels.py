"""The backbone's image processor, run on a whole batch in torch next to the model.

transformers runs CLIP's and VideoMAE's image processors in torch through torchvision
(`TorchvisionBackend`) and falls back to a per-image PIL path without it. No torchvision build
fits the CPU torch wheel pinned here, and the PIL path costs about 1 ms per 224 px image on one
core: run in a DataLoader worker, it takes a core from a CPU model that needs both.
`TensorImageProcessor` reads the processor's own settings and runs the torchvision backend's
steps on the batch, on the model's device (resize with antialias, rounded back to uint8; center
crop, padding when the image is smaller; rescale and normalise fused), so the workers only
decode. A processor with a setting outside those steps is called as it is, so every checkpoint
still loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_transforms import get_resize_output_image_size
from transformers.image_utils import ChannelDimension

# PIL resampling codes (as saved in preprocessor_config.json) -> torch interpolation modes.
_MODES = {2: "bilinear", 3: "bicubic"}
_KNOWN = {
    "do_convert_rgb",  # the decoders already give RGB
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "image_processor_type",
    "feature_extractor_type",
    "processor_class",
    "default_to_square",
    "do_pad",
}

Images = torch.Tensor | Sequence[np.ndarray | torch.Tensor]


@dataclass(frozen=True, eq=False)
class TensorImageProcessor:
    """Batched uint8 (N, H, W, 3) RGB images -> float32 (N, 3, h, w) `pixel_values`."""

    shortest_edge: int | None  # resize so the short side is this long (aspect kept) ...
    size: tuple[int, int] | None  # ... or to exactly (height, width); neither: no resize
    mode: str  # "bilinear" | "bicubic"
    crop: tuple[int, int] | None  # center crop (height, width)
    mean: torch.Tensor  # (3,) in uint8 units: mean / rescale_factor
    std: torch.Tensor  # (3,) in uint8 units

    @classmethod
    def from_processor(cls, processor: Any) -> TensorImageProcessor | None:
        """The processor's steps in torch, or None when it has a setting this does not run."""
        d = processor.to_dict()
        if _unsupported(d):
            return None
        size, crop = d.get("size") or {}, d.get("crop_size") or {}
        resize = bool(d.get("do_resize"))
        scale = float(d["rescale_factor"]) if d.get("do_rescale") else 1.0
        mean = d["image_mean"] if d.get("do_normalize") else 0.0
        std = d["image_std"] if d.get("do_normalize") else 1.0
        edge = int(size["shortest_edge"]) if resize and "shortest_edge" in size else None
        return cls(
            shortest_edge=edge,
            size=(int(size["height"]), int(size["width"])) if resize and "height" in size else None,
            mode=_MODES.get(d.get("resample"), "bilinear"),
            crop=(int(crop["height"]), int(crop["width"])) if d.get("do_center_crop") else None,
            mean=torch.as_tensor(mean, dtype=torch.float32).expand(3) / scale,  # one or per channel
            std=torch.as_tensor(std, dtype=torch.float32).expand(3) / scale,
        )

    def __call__(self, images: Images) -> torch.Tensor:
        """Images of any sizes; those of one size are processed together, order kept."""
        if isinstance(images, torch.Tensor):
            return self._same_size(images)
        tensors = [im if isinstance(im, torch.Tensor) else torch.from_numpy(np.array(im))
                   for im in images]  # fmt: skip
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(tensors):
            groups.setdefault(tuple(t.shape), []).append(i)
        if len(groups) == 1:
            return self._same_size(torch.stack(tensors))
        out: list[torch.Tensor | None] = [None] * len(tensors)
        for idx in groups.values():
            batch = self._same_size(torch.stack([tensors[i] for i in idx]))
            for i, px in zip(idx, batch, strict=True):
                out[i] = px
        return torch.stack(out)  # type: ignore[arg-type]

    def _same_size(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 (N, H, W, 3) RGB images, got {images.dtype} "
                             f"{tuple(images.shape)}")  # fmt: skip
        x = images.permute(0, 3, 1, 2)  # (N, 3, H, W) uint8, a view
        x = self._resize(x)
        if self.crop is not None:
            x = center_crop(x, self.crop)
        mean, std = self.mean.to(x.device)[:, None, None], self.std.to(x.device)[:, None, None]
        return x.float().sub_(mean).div_(std).contiguous()

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortest_edge is not None:
            new = tuple(get_resize_output_image_size(
                x[0], self.shortest_edge, default_to_square=False,
                input_data_format=ChannelDimension.FIRST))  # fmt: skip
        elif self.size is not None:
            new = self.size
        else:
            return x
        if new == tuple(x.shape[-2:]):
            return x
        y = F.interpolate(x.float(), size=new, mode=self.mode, antialias=True, align_corners=False)
        return y.clamp_(0, 255).round_().to(torch.uint8)  # as torchvision resizes uint8


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., H, W) -> (..., h, w) from the center, zero-padding a side shorter than the crop.

    An odd padding puts the extra row/column on top/left, as transformers' `center_crop` does.
    """
    (h, w), (height, width) = size, x.shape[-2:]
    if h > height or w > width:
        pad_h, pad_w = max(h - height, 0), max(w - width, 0)
        x = F.pad(x, ((pad_w + 1) // 2, pad_w // 2, (pad_h + 1) // 2, pad_h // 2))
        height, width = x.shape[-2:]
    top, left = int((height - h) / 2.0), int((width - w) / 2.0)
    return x[..., top : top + h, left : left + w]


def _unsupported(d: dict[str, Any]) -> bool:
    """Whether the processor settings `d` ask for a step `TensorImageProcessor` does not run."""
    size, crop = set(d.get("size") or {}), set(d.get("crop_size") or {})
    resize, center = d.get("do_resize"), d.get("do_center_crop")
    return bool(
        {k for k, v in d.items() if k not in _KNOWN and v not in (None, False)}
        or d.get("do_pad")
        or d.get("default_to_square")
        or (resize and (d.get("resample") not in _MODES))
        or (resize and size not in ({"shortest_edge"}, {"height", "width"}))
        or (center and crop != {"height", "width"})
    )


class ImagePixels:
    """`pixel_values` for a batch of frames: the torch path, or the processor itself."""

    def __init__(self, kind: str, processor: Any) -> None:
        self.kind, self.processor = kind, processor
        self.batched = TensorImageProcessor.from_processor(processor)

    def __call__(self, images: Images) -> torch.Tensor:
        """(N, H, W, 3) uint8 frames -> (N, 3, h, w) float32."""
        if self.batched is not None:
            return self.batched(images)
        frames = [im.cpu().numpy() if isinstance(im, torch.Tensor) else im for im in images]
        if self.kind == "videomae":  # each frame as a one-frame video
            return self.processor([[f] for f in frames], return_tensors="pt")["pixel_values"][:, 0]
        return self.processor(images=frames, return_tensors="pt")["pixel_values"]

    def describe(self) -> str:
        """What ran, for the cache's provenance."""
        if self.batched is None:
            return f"{type(self.processor).__name__}, per image"
        return "torch batch: resize antialias (uint8), center crop, rescale+normalise (float32)"
