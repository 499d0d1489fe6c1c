"""Trainable parameters of each VA variant on CLIP ViT-B/32, by part: the table in docs/va.md.

The models are the repository's own (`VAModel`, built as the stages build them) with params.yaml's
`pretrain.model`, on `transformers.CLIPVisionConfig()` (the ViT-B/32 image tower's shapes) with
no weights at all (meta tensors): nothing is downloaded or initialised. A variant's trainable
parameters are those of stage 1 and stage 2 together (`affectpipe.train.va`: `STAGE1_PARTS`,
`STAGE2_PARTS` and the projector, `finetune.objective.train_projector` being true by default);
the frozen backbone counts for none. `lora` and `frozen_mlp` are counted with each frame feature
(`pretrain.model.pool`: `cls`, the default, and `tokens`); `cached` and `linear_probe` read the
pooled vector of the feature store, whatever `pool` says.

    python bench/va_params.py            # prints the markdown table of docs/va.md
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import transformers as tf

from affectpipe.config import from_section, load_params
from affectpipe.models.va import VAArchitecture, VAModel, VAModelConfig, reads_block_cache
from affectpipe.train.va import STAGE1_PARTS, STAGE2_PARTS

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("lora", "temporal", "projector", "temporal_head", "regressor")
TITLES = {"lora": "LoRA", "temporal": "temporal transformer", "projector": "projector",
          "temporal_head": "temporal head", "regressor": "regression head"}  # fmt: skip
# (variant, pool) rows: pool only changes the block-cache variants' frame feature
ROWS = (("lora", "cls"), ("lora", "tokens"), ("frozen_mlp", "cls"), ("frozen_mlp", "tokens"),
        ("cached", None), ("linear_probe", None))  # fmt: skip


def architecture() -> VAArchitecture:
    """params.yaml's `pretrain.model`; `standardize` fixed (buffers, not parameters)."""
    arch = from_section(VAArchitecture, load_params(ROOT / "params.yaml")["pretrain"]["model"],
                        "pretrain.model")  # fmt: skip
    return replace(arch, standardize="diag")


def build(pipeline: str, arch: VAArchitecture, config: tf.CLIPVisionConfig) -> VAModel:
    """`pipeline`'s model on a weightless CLIP of `config` (meta tensors: shapes only)."""
    with torch.device("meta"):
        clip = tf.CLIPVisionModel(config) if reads_block_cache(pipeline) else None
        return VAModel(VAModelConfig.build(pipeline, int(config.hidden_size), arch), clip)


def trainable(model: VAModel) -> dict[str, int]:
    """Trainable parameters per part over both stages (a part the model lacks: 0)."""
    names = set(model.trainable_parameters(STAGE1_PARTS + STAGE2_PARTS + ("projector",)))
    counts = dict.fromkeys(PARTS, 0)
    for name, p in model.named_parameters():
        if name in names:
            counts["lora" if "lora_" in name else name.split(".")[0]] += p.numel()
    return counts


def count_all(
    arch: VAArchitecture | None = None, config: tf.CLIPVisionConfig | None = None
) -> dict[tuple[str, str | None], dict[str, int]]:
    """`ROWS` -> trainable parameters per part, on `config` (default: ViT-B/32)."""
    arch = architecture() if arch is None else arch
    config = tf.CLIPVisionConfig() if config is None else config
    out = {}
    for pipeline, pool in ROWS:
        out[(pipeline, pool)] = trainable(build(pipeline, replace(arch, pool=pool or arch.pool),
                                                config))  # fmt: skip
    return out


def table(counts: dict[tuple[str, str | None], dict[str, int]], default_pool: str) -> str:
    """The markdown table: one row per variant (and frame feature), one column per part."""
    head = ["variant", "frame feature", *(TITLES[p] for p in PARTS), "total"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (pipeline, pool), parts in counts.items():
        feature = "pooled store vector" if pool is None else f"`{pool}`"
        if pool == default_pool:
            feature += " (default)"
        cells = [f"`{pipeline}`", feature, *(f"{parts[p]:,}" if parts[p] else "-" for p in PARTS),
                 f"{sum(parts.values()):,}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    print(table(count_all(), architecture().pool))


if __name__ == "__main__":
    main()
