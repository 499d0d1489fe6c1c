"""Dataset name -> the module that downloads and preprocesses it."""

from __future__ import annotations

import importlib
from types import ModuleType

DATASETS: dict[str, str] = {
    "afewva": "affectpipe.data.afewva",
    "ravdess": "affectpipe.data.ravdess",
    "cremad": "affectpipe.data.cremad",
}


def dataset_module(name: str) -> ModuleType:
    """The module with `download(cfg, out_dir, seed)` and `preprocess(cfg, raw, out, seed)`."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; valid: {sorted(DATASETS)}")
    return importlib.import_module(DATASETS[name])
