"""One call seeds every random number generator the pipeline uses."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a fresh NumPy Generator."""
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - some libraries still read the legacy global state
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
