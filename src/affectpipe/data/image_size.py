"""The side of a dataset's images, `auto`: the input size of the backbone that embeds them.

`preprocess.afewva.crop_size` and `preprocess.<ravdess|cremad>.frame_size` are a side in pixels
or `auto`: the input size of the processor of `extract.clip.spec` (AFEW-VA's face crops) or
`extract.videomae.spec` (the AV datasets' frames), read from the processor's config alone (no
weights; `tiny`: the preset's processor). So a real backbone gets crops of its own input size
(224 px for ViT-B/32 and videomae-base) with no other change. `auto` is resolved once, on the
params mapping, before the section is built (`preprocess_values`: the preprocess stage, and
`predict` for checkpoints that record no settings), so the configs, the reports' `settings`
and everything that copies them (feature stores, checkpoints, predict) hold a plain int.
"""

from __future__ import annotations

from typing import Any

from affectpipe.config import ConfigError, section

AUTO = "auto"
# dataset -> (its image side key in `preprocess.<dataset>`, the backbone whose processor sizes
# `auto`: `extract.<backbone>.spec`); dvc.yaml's `datasets` names the same backbone (its spec is
# a params dependency of that preprocessing)
IMAGE_BACKBONE: dict[str, tuple[str, str]] = {
    "afewva": ("crop_size", "clip"),  # face crops, embedded by CLIP
    "ravdess": ("frame_size", "videomae"),  # clip frames, embedded by VideoMAE
    "cremad": ("frame_size", "videomae"),
}


def preprocess_values(params: dict[str, Any], dataset: str) -> dict[str, Any]:
    """params.yaml's `preprocess.<dataset>` mapping, an `auto` image side replaced by the input
    size of `extract.<backbone>.spec`'s processor (`features.backbones.input_size`); an int, or a
    missing key (building the section names it), is left as it is."""
    name = f"preprocess.{dataset}"
    values = section(params, name)
    if dataset not in IMAGE_BACKBONE:
        return values
    key, backbone = IMAGE_BACKBONE[dataset]
    value = values.get(key) if isinstance(values, dict) else None
    if not isinstance(value, str):
        return values
    if value != AUTO:
        raise ConfigError(
            f"params.yaml: '{name}.{key}': a side in pixels or '{AUTO}' (the input size of "
            f"extract.{backbone}.spec's processor), got {value!r}"
        )
    from affectpipe.features.backbones import input_size

    return {**values, key: input_size(backbone, section(params, f"extract.{backbone}.spec"))}
