"""Dataset name -> the module that downloads and preprocesses it.

Each module has the same face: `DownloadConfig` and `download(cfg, out_dir)` (returning notes for
the console, or None), `PreprocessConfig`
and `preprocess(cfg, raw_dir, out_dir, seed)`; the configs are the `download.<dataset>` and
`preprocess.<dataset>` params sections, built once by the stage scripts.
"""

from __future__ import annotations

import importlib
from types import ModuleType

DATASETS: dict[str, str] = {
    "afewva": "affectpipe.data.afewva",
    "ravdess": "affectpipe.data.ravdess",
    "cremad": "affectpipe.data.cremad",
}


def dataset_module(name: str) -> ModuleType:
    """The module of dataset `name`; its configs are `module.DownloadConfig`/`PreprocessConfig`."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; valid: {sorted(DATASETS)}")
    return importlib.import_module(DATASETS[name])
