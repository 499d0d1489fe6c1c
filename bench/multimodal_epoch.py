"""Benchmark: a multimodal training epoch on cached features vs running the backbones per batch.

Training reads VideoMAE and wav2vec2 embeddings from the HDF5 cache, so an epoch costs only the
fusion model. The alternative runs both real-size backbones (VideoMAE-base on 16x224x224 clips,
wav2vec2-base on 3 s of audio; random weights, same compute as the released models) for every
pair of every epoch. That path is measured on a few batches, in its fastest setting here
(inference mode, bf16 autocast, frozen backbones, no decoding or preprocessing counted), and
extrapolated per pair; the cached epoch is measured whole. Writes
`bench/results/multimodal_epoch.json`.

    python bench/multimodal_epoch.py            # about a minute on 2 CPU cores
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import typer

from affectpipe.config import load_params
from affectpipe.features.backbones import real_size, resolve_device
from affectpipe.losses import av_loss
from affectpipe.models.multimodal import AVEmotionModel
from affectpipe.train.multimodal import (
    OwnParams,
    TrainMultimodalConfig,
    loss_terms,
    model_config,
    stage_config,
)

app = typer.Typer(add_completion=False)


def fusion_step(model, opt, face, voice, labels, terms: dict[str, float]) -> None:
    out = model(face, voice)
    batch = {
        "emotion": labels,
        "face_emotion": labels,
        "voice_emotion": labels,
        "congruent": torch.ones(len(labels), device=face.device),
    }
    loss, _ = av_loss(out, batch, terms, {})
    opt.zero_grad()
    loss.backward()
    opt.step()


def cached_epoch(
    pairs: int, batch: int, device: torch.device, cfg: TrainMultimodalConfig, own: OwnParams
) -> float:
    """Seconds for one epoch over `pairs` cached (768-d, 768-d) pairs, batches of `batch`: the
    fusion model and loss of the `train_multimodal` params."""
    torch.manual_seed(0)
    model = AVEmotionModel(model_config(cfg, own, "fusion", 768, 768, list(range(8)), None)).to(
        device
    )
    terms = loss_terms("fusion", own)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    face, voice = torch.randn(pairs, 768, device=device), torch.randn(pairs, 768, device=device)
    labels = torch.randint(0, 8, (pairs,), device=device)
    fusion_step(model, opt, face[:batch], voice[:batch], labels[:batch], terms)  # warm-up
    start = time.perf_counter()
    for i in range(0, pairs, batch):
        part = slice(i, i + batch)
        fusion_step(model, opt, face[part], voice[part], labels[part], terms)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.inference_mode()
def backbone_seconds_per_pair(
    batch: int, batches: int, device: torch.device, audio_s: float
) -> dict[str, float]:
    """Seconds per pair to embed one face clip (VideoMAE) and one utterance (wav2vec2)."""
    video, audio = real_size("videomae", device), real_size("wav2vec2", device)
    cfg = video.model.config
    clips = torch.randn(batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size, device=device)
    wave = torch.randn(batch, int(16000 * audio_s), device=device)
    dtype = torch.bfloat16
    out = {}
    for name, model, x in (("videomae", video.model, clips), ("wav2vec2", audio.model, wave)):
        with torch.autocast(device.type, dtype=dtype):
            model(x).last_hidden_state.mean(1)  # warm-up
            start = time.perf_counter()
            for _ in range(batches):
                model(x).last_hidden_state.mean(1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        out[name] = (time.perf_counter() - start) / (batch * batches)
    return out


@app.command()
def main(
    pairs: int = typer.Option(2880, help="pairs per epoch (RAVDESS speech: 1440 clips x 2)"),
    batch: int = typer.Option(32, help="training batch size of the cached epoch"),
    backbone_batch: int = typer.Option(2, help="pairs per measured backbone batch"),
    backbone_batches: int = typer.Option(2, help="backbone batches measured"),
    audio_s: float = typer.Option(3.0, help="seconds of audio per utterance"),
    device: str = typer.Option("auto"),
    out: Path = typer.Option(Path("bench/results/multimodal_epoch.json")),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    dev = resolve_device(device)
    cfg, own = stage_config(load_params(params_file)["train_multimodal"], "fusion")
    cached = cached_epoch(pairs, batch, dev, cfg, own)
    per_pair = backbone_seconds_per_pair(backbone_batch, backbone_batches, dev, audio_s)
    naive = pairs * (per_pair["videomae"] + per_pair["wav2vec2"]) + cached
    result = {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "pairs": pairs,
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine
        "cached_epoch_s": round(cached, 3),
        "backbone_s_per_pair": {k: round(v, 4) for k, v in per_pair.items()},
        "backbone_pairs_measured": backbone_batch * backbone_batches,
        "naive_epoch_s_extrapolated": round(naive, 1),
        "speedup": round(naive / cached, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    typer.echo(
        f"cached epoch ({pairs} pairs): {cached:.2f} s "
        f"(load average {result['load_average_1min']} on {os.cpu_count()} cores)"
    )
    typer.echo(
        f"backbones per pair: VideoMAE {per_pair['videomae']:.3f} s, "
        f"wav2vec2 {per_pair['wav2vec2']:.3f} s (bf16, {backbone_batch * backbone_batches}"
        f" pairs measured)"
    )
    typer.echo(
        f"backbone-per-batch epoch, extrapolated: {naive:.0f} s -> "
        f"cached is {naive / cached:.0f}x faster"
    )


if __name__ == "__main__":
    app()
