"""The Pipeline-A training cache: CLIP hidden states entering the first LoRA block.

LoRA sits only in the last block(s), and every block before them is frozen, so their output for
a given crop is the same every epoch. Computing it once and training on it runs only the
adapted blocks per step (see `bench/va_epoch.py` for the measured gain). The cache is a feature
store file (`affectpipe.features.store`) made on the same sharded path as the `extract` stores
(`shards`): per clip a (n, T*W) array, the (T, W) token grid flattened because the store holds
2-D rows; file attributes record the backbone, its config hash, the block index and the grid,
so a cache made for another backbone or block is refused.

The hidden states are computed in float32, as the adapted blocks see them when Pipeline A runs
the whole backbone, and a batch never spans two clips: a frame's hidden states can differ in the
last bit with the batch they are computed in (CPU kernels block by batch size), and the cache
keeps the batches it has always been made with. Augmentation is off for Pipeline A: a cached
input cannot be re-augmented per epoch, and the cached and full-backbone paths must see the
same pixels to give the same result.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import torch
from pydantic import PositiveInt

from affectpipe.compute import ComputeConfig
from affectpipe.config import params_section
from affectpipe.features.backbones import Backbone, load_backbone
from affectpipe.features.shards import Rows, plan_batches, run_sharded, shard_device
from affectpipe.features.sources import afewva_frames_plan, source_settings
from affectpipe.features.store import BLOCK_CONTENT
from affectpipe.models.va import clip_layers, hidden_before, resolve_blocks
from affectpipe.problems import ProblemLog


@params_section
class BlockCacheConfig:
    """`va_cache` in params.yaml."""

    batch_size: PositiveInt  # frames per forward pass (a batch never spans two clips)


def cache_attrs(
    backbone: Backbone, block: int, tokens: int, settings: str = "{}"
) -> dict[str, Any]:
    """What a reader of the cache must match."""
    return {
        "backbone": backbone.kind,
        "spec": backbone.spec,
        "config_hash": backbone.config_hash,
        "weights_hash": backbone.weights_hash,
        "content": BLOCK_CONTENT,
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


def block_rows(backbone: Backbone, block: int, tokens: int) -> Rows:
    """Per frame, the (T, W) hidden states entering `block`, flattened to one float32 row."""
    clip = backbone.model
    return Rows(
        lambda x: hidden_before(clip, x["pixel_values"], block).float().flatten(1),
        tokens * backbone.dim,
        torch.float32,
    )


def build_block_cache(
    processed: Path,
    out: Path,
    spec: str,
    lora_blocks: list[int],
    cfg: BlockCacheConfig,
    compute: ComputeConfig,
    log: ProblemLog,
) -> int:
    """Write the cache of CLIP `spec` for every usable AFEW-VA crop under `processed`, at the
    first of `lora_blocks`; return the frames cached."""
    backbone = load_backbone("clip", spec, shard_device(compute.device))
    clip = backbone.model
    block = resolve_blocks(lora_blocks, len(clip_layers(clip)))[0]
    side = int(clip.config.image_size) // int(clip.config.patch_size)
    tokens = side * side + 1
    plan = afewva_frames_plan(processed, log)
    batches = plan_batches(plan, cfg.batch_size, False, False, within_clips=True)
    attrs = partial(cache_attrs, backbone, block, tokens, source_settings(processed))
    rows = block_rows(backbone, block, tokens)
    run_sharded(backbone, plan, batches, rows, out, compute.dataloader_workers, attrs, log)
    return len(plan.items)
