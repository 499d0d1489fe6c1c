"""The Pipeline-A training cache: CLIP hidden states entering the first LoRA block.

LoRA sits only in the last block(s), and every block before them is frozen, so their output for
a given crop is the same every epoch. Computing it once and training on it runs only the
adapted blocks per step (see `bench/va_epoch.py` for the measured gain). The cache is a feature
store file (`affectpipe.features.store`): per clip a (n, T*W) array, the (T, W) token grid
flattened because the store holds 2-D rows; file attributes record the backbone, its config
hash, the block index and the grid, so a cache made for another backbone or block is refused.

Augmentation is off for Pipeline A: a cached input cannot be re-augmented per epoch, and the
cached and full-backbone paths must see the same pixels to give the same result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from affectpipe.features.backbones import Backbone
from affectpipe.features.embed import prepare
from affectpipe.features.sources import afewva_frames_plan, source_settings
from affectpipe.features.store import FeatureWriter, open_features
from affectpipe.models.va import clip_layers, hidden_before, resolve_blocks
from affectpipe.problems import ProblemLog


def cache_attrs(
    backbone: Backbone, block: int, tokens: int, settings: str = "{}"
) -> dict[str, Any]:
    """What a reader of the cache must match."""
    return {
        "backbone": backbone.kind,
        "spec": backbone.spec,
        "config_hash": backbone.config_hash,
        "content": "clip_hidden_before_block",
        "block": block,
        "tokens": tokens,
        "width": backbone.dim,
        "dim": backbone.dim,
        "preprocessing": json.dumps(
            {"processor": backbone.processor.to_dict(), "pixels": backbone.pixels.describe()},
            sort_keys=True,
        ),
        "source_settings": settings,  # AFEW-VA's preprocessing (`sources.source_settings`)
    }


@torch.no_grad()
def build_block_cache(
    processed: Path,
    backbone: Backbone,
    lora_blocks: list[int],
    out: Path,
    batch_size: int,
    log: ProblemLog,
) -> int:
    """Write the cache for every usable AFEW-VA crop under `processed`; return frames cached."""
    clip = backbone.model
    block = resolve_blocks(lora_blocks, len(clip_layers(clip)))[0]
    plan = afewva_frames_plan(processed, log)
    side = int(clip.config.image_size) // int(clip.config.patch_size)
    tokens = side * side + 1
    n_frames = 0
    attrs = cache_attrs(backbone, block, tokens, source_settings(processed))
    with FeatureWriter(out, attrs) as writer:
        for entry in tqdm(plan.clips, desc="block cache", leave=False):
            rows, items = [], plan.items[entry.start : entry.stop]
            for i in range(0, len(items), batch_size):
                inputs = prepare(backbone, items[i : i + batch_size])
                px = inputs["pixel_values"].to(backbone.device)
                h = hidden_before(clip, px, block).float()  # (n, T, W)
                rows.append(h.flatten(1).cpu().numpy())  # (n, T*W)
            writer.add(entry.clip_id, np.concatenate(rows), **entry.labels)
            n_frames += len(items)
    return n_frames


def open_block_cache(path: Path, expect: dict[str, Any] | None = None):
    """Open a cache written by `build_block_cache`, checking it holds hidden states."""
    return open_features(path, {"content": "clip_hidden_before_block", **(expect or {})})
