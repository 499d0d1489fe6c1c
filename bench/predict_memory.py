"""Peak memory and time of `affectpipe predict` against video length: 2 s, 5 min and 30 min.

The videos repeat the demo's 2 s talking-face sample (face and voice, 160x128 at 15 fps, AAC at
48 kHz), remuxed loop after loop without re-encoding, so every model runs on every second: the
VA model on 25 fps face crops, the emotion models on frames spread over the video and on the
whole audio track. Each length runs `affectpipe predict` in its own process on the pipeline's
trained models (`dvc repro` first); peak memory is that process's maximum resident set size
(`ru_maxrss` of the child). Memory that grows with length shows as a growing peak.

    python bench/predict_memory.py              # about 15 min on 2 cores
    python bench/predict_memory.py --lengths 2,60

Writes bench/results/predict_memory.json.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import av
import typer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "predict_memory.json"
WORK = ROOT / "bench" / "work" / "predict_memory"


def loop_video(sample: Path, seconds: float, out: Path) -> Path:
    """`sample` repeated until `seconds` long: its packets copied with shifted timestamps."""
    if out.is_file():
        return out
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(sample)) as src:
        packets = [p for p in src.demux() if p.dts is not None]  # flush packets have none
        # one loop's span per stream, from its first decode time to its last packet's end
        first: dict[int, int] = {}
        span: dict[int, int] = {}
        for p in packets:
            i = p.stream.index
            first.setdefault(i, p.dts)
            span[i] = max(span.get(i, 0), p.dts + (p.duration or 0) - first[i])
        loop_s = float(src.duration / av.time_base)
        with av.open(str(tmp), "w") as dst:
            streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
            for n in range(max(1, round(seconds / loop_s))):
                for p in packets:
                    i = p.stream.index
                    copy = av.Packet(bytes(p))
                    copy.pts, copy.dts = p.pts + n * span[i], p.dts + n * span[i]
                    copy.duration, copy.time_base = p.duration, p.time_base
                    copy.is_keyframe = p.is_keyframe
                    copy.stream = streams[i]
                    dst.mux(copy)
    tmp.rename(out)
    return out


def run_predict(video: Path, models_dir: Path | None) -> dict[str, float]:
    """`affectpipe predict` on `video` in a child process: wall seconds and peak RSS (MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "affectpipe.cli", "predict", str(video), "-o",
           str(video.with_suffix(".jsonl"))]  # fmt: skip
    if models_dir is not None:
        cmd += ["--models-dir", str(models_dir)]
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"})
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:  # ru_maxrss is the largest child so far: run lengths shortest first
        raise RuntimeError(f"{video}: peak RSS not above an earlier run's; run lengths ascending")
    with av.open(str(video)) as c:
        duration = float(c.duration / av.time_base)
    return {"video_s": round(duration, 1), "wall_s": round(wall, 1),
            "peak_rss_mib": round(peak / 1024, 1)}  # fmt: skip


def main(
    lengths: str = typer.Option("2,300,1800", help="video lengths in seconds, ascending"),
    models_dir: Path = typer.Option(None, help="checkpoints; default: the checkout's models/"),
):
    from affectpipe.demo import make_samples

    seconds = sorted(float(s) for s in lengths.split(","))
    sample = make_samples(WORK / "samples")["happy face, happy voice"]
    results = []
    for s in seconds:
        video = loop_video(sample, s, WORK / f"loop_{int(s)}s.mp4")
        results.append(run_predict(video, models_dir))
        print(json.dumps(results[-1]), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    machine = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    OUT.write_text(json.dumps({**machine, "runs": results}, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
