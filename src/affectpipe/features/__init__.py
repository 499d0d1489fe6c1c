"""Frozen-backbone embeddings (CLIP, VideoMAE, wav2vec2) cached in HDF5.

`store` (the HDF5 cache) is imported eagerly; `backbones` and `extract` pull in transformers
(seconds to import), so their names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from affectpipe.features.store import (
    FORMAT_VERSION,
    FeatureReader,
    FeatureWriter,
    StaleCacheError,
    open_features,
)

_LAZY = {
    "Backbone": "affectpipe.features.backbones",
    "BackboneUnavailable": "affectpipe.features.backbones",
    "load_backbone": "affectpipe.features.backbones",
    "real_size": "affectpipe.features.backbones",
    "resolve_device": "affectpipe.features.backbones",
}

__all__ = [
    "FORMAT_VERSION",
    "FeatureReader",
    "FeatureWriter",
    "StaleCacheError",
    "open_features",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'affectpipe.features' has no attribute {name!r}")
