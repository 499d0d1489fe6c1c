"""affectpipe: reproducible multimodal emotion understanding as a DVC pipeline."""

import os

__version__ = "0.1.0"

# Offline unless asked otherwise, wherever the code runs: a hub id that is not in the local
# cache then fails at once with one line, instead of a minute of retries. `HF_HUB_OFFLINE=0`
# lets transformers download (set before affectpipe or transformers is imported).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
