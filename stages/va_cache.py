"""Stage `va_cache`: AFEW-VA crops -> CLIP hidden states entering the first LoRA block (HDF5).

Pipelines `lora` and `frozen_mlp` train on this cache, running only the adapted block(s) per step.
The backbone is `extract.clip.spec`, the one Pipeline B's features come from, and the block is
the first of `pretrain.model.lora_blocks`, the one the adapters start at.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from affectpipe.compute import compute_config
from affectpipe.config import from_section, load_params, section
from affectpipe.features.block_cache import BlockCacheConfig, build_block_cache
from affectpipe.problems import ProblemLog
from affectpipe.stage import run_stage

app = typer.Typer(add_completion=False)


@app.command()
def main(
    in_dir: Path = typer.Option(..., help="processed AFEW-VA folder"),
    out: Path = typer.Option(..., help="the cache file (.h5)"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    cfg = run_stage(lambda: from_section(BlockCacheConfig, section(params, "va_cache"), "va_cache"))
    spec = run_stage(lambda: section(params, "extract.clip.spec"))
    blocks = run_stage(lambda: section(params, "pretrain.model.lora_blocks"))
    compute = run_stage(lambda: compute_config(params))
    log = run_stage(lambda: ProblemLog(section(params, "extract.bad_input")))
    n = run_stage(lambda: build_block_cache(in_dir, out, spec, blocks, cfg, compute, log))
    if os.environ.get("RANK", "0") != "0":  # torchrun/accelerate: rank 0 merged and reports
        return
    typer.echo(f"va_cache: {n} frames -> {out} ({len(log.skipped)} input(s) skipped)")


if __name__ == "__main__":
    app()
