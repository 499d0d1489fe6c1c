"""Models: the VA model and its heads, stage-1 contrastive wrapper, multimodal fusion."""

from affectpipe.models.contrastive import ContrastiveConfig, ContrastivePretrainer, MemoryQueue
from affectpipe.models.heads import FrameProjector, RegressionHead, TemporalHead
from affectpipe.models.va import VAModel, VAModelConfig

__all__ = [
    "ContrastiveConfig",
    "ContrastivePretrainer",
    "FrameProjector",
    "MemoryQueue",
    "RegressionHead",
    "TemporalHead",
    "VAModel",
    "VAModelConfig",
]
