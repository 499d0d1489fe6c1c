"""AFEW-VA clips as the VA models read them: a feature-store file, split by split.

Inputs are CLIP frame features (`cached`, `linear_probe`) or the block cache of hidden states
entering the first LoRA block (`lora`, `frozen_mlp`; see `block_cache`). Both carry per-frame
`frame`, `valence`, `arousal` and per-clip `split`, `actor`. Their provenance travels into every
checkpoint, and a checkpoint is only ever run on inputs with the same provenance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from affectpipe.data.windows import ClipData
from affectpipe.features.store import BLOCK_CONTENT, FeatureReader, open_features
from affectpipe.models.va import PIPELINES, reads_block_cache
from affectpipe.problems import InputProblem


def open_inputs(path: Path, pipeline: str) -> FeatureReader:
    """Open the feature file `pipeline` trains on, refusing the other kind of file."""
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline '{pipeline}'; valid: {list(PIPELINES)}")
    reader = open_features(path, {"backbone": "clip"})
    is_blocks = reader.attrs.get("content") == BLOCK_CONTENT
    if is_blocks != reads_block_cache(pipeline):
        reader.close()
        want = "the block cache" if reads_block_cache(pipeline) else "CLIP frame features"
        raise InputProblem(path, f"pipeline '{pipeline}' trains on {want}, not this file")
    return reader


def load_clips(reader: FeatureReader, splits: tuple[str, ...]) -> list[ClipData]:
    """All clips of the given splits, in clip-id order (hidden states kept as float16)."""
    clips = []
    for cid in reader.clip_ids:
        lab = reader.labels(cid)
        missing = [k for k in ("frame", "valence", "arousal", "split") if k not in lab]
        if missing:
            raise InputProblem(reader.path, f"clip {cid} lacks label(s) {missing}")
        if lab["split"] not in splits:
            continue
        x = reader[cid]
        if reader.attrs.get("content") == BLOCK_CONTENT:
            x = x.astype(np.float16)  # halves memory; the model computes in float32
        va = np.stack([lab["valence"], lab["arousal"]], 1).astype(np.float32)
        frames = np.asarray(lab["frame"], dtype=np.int64)
        clips.append(ClipData(cid, x, va, frames, lab["split"], str(lab.get("actor", ""))))
    return clips


def split_clips(reader: FeatureReader, split: str) -> list[ClipData]:
    """The clips of one split; an empty split is an `InputProblem`."""
    clips = load_clips(reader, (split,))
    if not clips:
        raise InputProblem(reader.path, f"no clip in split '{split}'")
    return clips


def input_provenance(reader: FeatureReader) -> dict[str, Any]:
    """Where the inputs came from: travels into every checkpoint."""
    keys = ("backbone", "spec", "config_hash", "weights_hash", "content", "block", "dim",
            "source_settings")  # fmt: skip
    return {k: reader.attrs[k] for k in keys if k in reader.attrs}


def check_same_inputs(ckpt: dict[str, Any], reader: FeatureReader) -> None:
    """Refuse inputs whose provenance differs from what checkpoint `ckpt` was trained on."""
    made, now = ckpt["provenance"].get("inputs", {}), input_provenance(reader)
    keys = set(made) | set(now)
    if not ("source_settings" in made and "source_settings" in now):
        keys.discard("source_settings")  # older checkpoints and caches do not record it
    diff = sorted(k for k in keys if made.get(k) != now.get(k))
    if diff:
        raise InputProblem(
            reader.path, f"inputs differ from those the checkpoint was trained on in {diff}"
        )
