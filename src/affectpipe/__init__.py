"""affectpipe: reproducible multimodal emotion understanding as a DVC pipeline."""

__version__ = "0.1.0"
