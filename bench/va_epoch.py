"""Epoch time of the VA pipelines on the real-size CLIP ViT-B/32 architecture (random weights).

Measures one training step (forward, CCC+MSE loss, backward, AdamW) per pipeline on a few
windows and extrapolates per frame to an epoch of `--epoch-frames` frames (AFEW-VA: 30,051):
- A naive: the whole backbone runs every step (pixels in; decoding and resizing not counted,
  which favours the naive path);
- A as built: hidden states entering the LoRA block come from the cache (float16 rows, as
  `load_clips` holds them); only the last block, post-layernorm and heads run;
- B: cached 768-d frame features, temporal transformer and heads.
The one-off cost of building A's cache (one no-grad pass of the first blocks) is reported too.

    python bench/va_epoch.py --windows 2 --length 16 --steps 3
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch
import typer

from affectpipe.config import from_section, load_params
from affectpipe.features.backbones import real_size
from affectpipe.losses import va_regression_loss
from affectpipe.models.va import VAArchitecture, VAModel, VAModelConfig

ROOT = Path(__file__).resolve().parents[1]

app = typer.Typer(add_completion=False)


def _time_steps(model: VAModel, forward, batch, steps: int) -> float:
    """Median seconds of one optimiser step (first step is a warm-up, not counted)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        out = forward(batch)
        loss = va_regression_loss(out["va"], batch["va"], batch["valid"], 1.0, 1.0)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


@app.command()
def main(
    windows: int = typer.Option(4, help="windows per step"),
    length: int = typer.Option(16, help="frames per window"),
    steps: int = typer.Option(4, help="timed steps per pipeline (after one warm-up)"),
    epoch_frames: int = typer.Option(30051, help="frames per epoch to extrapolate to"),
    threads: int = typer.Option(0, help="torch threads; 0 keeps the default"),
) -> None:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    b, n = windows, length
    frames = b * n
    backbone = real_size("clip")
    side = backbone.model.config.image_size
    valid = torch.ones(b, n, dtype=torch.bool)
    va = torch.rand(b, n, 2) * 2 - 1
    results: dict[str, float] = {}

    # params.yaml's architecture with the pooled CLS feature and per-dimension standardisation
    arch = from_section(VAArchitecture, load_params(ROOT / "params.yaml")["pretrain"]["model"],
                        "pretrain.model")  # fmt: skip
    arch = replace(arch, pool="cls", standardize="diag")
    lora = VAModel(VAModelConfig.build("lora", backbone.dim, arch), backbone.model).train()
    lora.trainable_parameters(("lora", "temporal_head", "regressor"))
    pixels = torch.randn(b, n, 3, side, side)
    naive = _time_steps(lora, lambda x: lora.heads(lora.encode_pixels(x["px"]), x["valid"]),
                        {"px": pixels, "valid": valid, "va": va}, steps)  # fmt: skip
    t0 = time.perf_counter()
    hidden = lora.hidden_before(pixels.flatten(0, 1)).half().reshape(b, n, -1)
    results["cache_build_s_per_frame"] = (time.perf_counter() - t0) / frames
    built = _time_steps(lora, lambda x: lora(x["x"], x["valid"]),
                        {"x": hidden, "valid": valid, "va": va}, steps)  # fmt: skip

    cached = VAModel(VAModelConfig.build("cached", backbone.dim, arch)).train()
    cached.trainable_parameters(("temporal", "temporal_head", "regressor"))
    feats = torch.randn(b, n, backbone.dim)
    b_step = _time_steps(cached, lambda x: cached(x["x"], x["valid"]),
                         {"x": feats, "valid": valid, "va": va}, steps)  # fmt: skip

    for name, step in (("a_naive", naive), ("a_built", built), ("b_cached", b_step)):
        results[f"{name}_s_per_frame"] = step / frames
        results[f"{name}_epoch_s"] = step / frames * epoch_frames
    results["speedup_a_built_vs_naive"] = naive / built
    results["speedup_b_vs_a_naive"] = naive / b_step
    results |= {"frames_per_step": frames, "epoch_frames": epoch_frames,
                "threads": torch.get_num_threads()}  # fmt: skip
    typer.echo(json.dumps(results, indent=2, sort_keys=True))
    out = Path(__file__).parent / "results" / "va_epoch.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    app()
