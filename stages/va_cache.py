"""Stage `va_cache`: AFEW-VA crops -> CLIP hidden states entering the first LoRA block (HDF5).

Pipelines `lora` and `probe` train on this cache, running only the adapted block(s) per step.
"""

from __future__ import annotations

from pathlib import Path

import typer

from affectpipe.compute import compute_config
from affectpipe.config import load_params, section
from affectpipe.features.backbones import load_backbone, resolve_device
from affectpipe.problems import ProblemLog
from affectpipe.stage import run_stage
from affectpipe.train.block_cache import build_block_cache

app = typer.Typer(add_completion=False)


@app.command()
def main(
    in_dir: Path = typer.Option(Path("data/processed/afewva")),
    out: Path = typer.Option(Path("data/features/clip_afewva_blocks.h5")),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_file)
    spec = section(params, "extract.clip.spec")
    blocks = section(params, "pretrain.model.lora_blocks")
    device = run_stage(lambda: resolve_device(compute_config(params).device))
    log = ProblemLog(section(params, "extract.bad_input"))
    n = run_stage(
        lambda: build_block_cache(in_dir, load_backbone("clip", spec, device), blocks, out, 32, log)
    )
    typer.echo(f"va_cache: {n} frames -> {out} ({len(log.skipped)} input(s) skipped)")


if __name__ == "__main__":
    app()
