"""The whole DAG at real size: the released architectures on real-resolution inputs.

In a throwaway git + DVC copy of this project (`--work`), this script
- saves ViT-B/32, VideoMAE-base and wav2vec2-base with random weights as Hugging Face folders
  (the hub is unreachable here; same architectures, so the same compute and memory) and points
  `extract.*.spec` at them;
- makes the synthetic sources write the real releases' resolutions: AFEW-VA 720x576 PNG frames,
  RAVDESS 1280x720 at 30 fps with 48 kHz audio (01 + 02 + 03 files), CREMA-D 480x360 FLV at
  30 fps with 16 kHz wavs; a few actors each (`--scale` multiplies them);
- shortens training (epochs, windows per epoch): the point is that every stage runs at real
  size, and how long and how much memory each takes, not the fit of random backbones;
- runs every stage in DAG order, one `dvc repro -s <stage>` at a time, and records its wall
  time and peak resident memory (the largest process of the stage, `dvc` included: what
  `wait4` reports for the process tree).

Every change to params.yaml is a `-S` override, printed, so the same run is also
`dvc exp run -S ...` (with the model folders made first). Writes `--out` (JSON) and prints a
table.

    python bench/real_size.py                       # = make repro-real-size
    python bench/real_size.py --scale 2 --out /tmp/real_size_x2.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.pipeline_repo import PipelineRepo  # noqa: E402  (a copy of the project, as tests use)

RESULTS = ROOT / "bench" / "results" / "real_size.json"
KINDS = ("clip", "videomae", "wav2vec2")
app = typer.Typer(add_completion=False)


def input_overrides(scale: int) -> list[str]:
    """Real-resolution look-alikes, a few actors per dataset (`scale` times as many)."""
    afewva_actors, av_actors = 5 * scale, 3 * scale  # AFEW-VA: 5 folds need 5 actors
    return [
        f"download.afewva.synthetic.actors={afewva_actors}",
        "download.afewva.synthetic.clips_per_actor=1",
        "download.afewva.synthetic.frames_per_clip=32",
        "download.afewva.synthetic.width=720",
        "download.afewva.synthetic.height=576",
        f"download.ravdess.synthetic.actors={av_actors}",
        "download.ravdess.synthetic.statements=[1]",
        "download.ravdess.synthetic.modalities=[1,2,3]",
        "download.ravdess.synthetic.duration_s=3.5",  # the release's clips run 3-5 s
        "download.ravdess.synthetic.fps=30",
        "download.ravdess.synthetic.width=1280",
        "download.ravdess.synthetic.height=720",
        "download.ravdess.synthetic.sample_rate=48000",
        "download.ravdess.synthetic.quiet_actors=[2]",
        f"download.cremad.synthetic.actors={av_actors}",
        "download.cremad.synthetic.sentences=[DFA]",
        "download.cremad.synthetic.duration_s=2.5",
        "download.cremad.synthetic.fps=30",
        "download.cremad.synthetic.width=480",
        "download.cremad.synthetic.height=360",
        "download.cremad.synthetic.quiet_actors=[1002]",
        "preprocess.ravdess.folds.folds=3",  # test, validation and training: one block each
        "preprocess.cremad.folds.folds=3",
    ]


def training_overrides() -> list[str]:
    """Short schedules: every training stage runs its real model, briefly."""
    return [
        "pretrain.epochs=1",
        "pretrain.window.windows_per_epoch=16",
        "finetune.epochs=2",
        "finetune.window.windows_per_epoch=16",
        "train_multimodal.train.epochs=5",
    ]


def model_overrides(models: Path) -> list[str]:
    return [f"extract.{kind}.spec={models / kind}" for kind in KINDS]


def stage_order(root: Path) -> list[str]:
    """Every stage of the DAG, each after the stages it depends on."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as dvc:
        graph = dvc.index.graph  # edges run from a stage to the stages it depends on
        return [stage.name for stage in reversed(list(nx.topological_sort(graph)))]


def run_stage(repo: PipelineRepo, stage: str) -> dict[str, object]:
    """One stage through dvc; its wall time and the peak RSS of its process tree."""
    cmd = [str(Path(sys.executable).parent / "dvc"), "repro", "--single-item", stage]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, cwd=repo.root, env=repo.env, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must know
        wall = time.perf_counter() - start
        if proc.returncode:
            log.seek(0)
            raise SystemExit(f"stage {stage} failed ({proc.returncode}):\n{log.read()[-4000:]}")
    return {"stage": stage, "wall_s": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024)}


def raw_counts(root: Path) -> dict[str, int]:
    """What the run read, in the units of the full releases' sizes."""
    raw = root / "data" / "raw"
    return {
        "afewva_frames": sum(1 for _ in (raw / "afewva").rglob("*.png")),
        "ravdess_videos": sum(1 for _ in (raw / "ravdess").rglob("*.mp4")),
        "ravdess_wavs": sum(1 for _ in (raw / "ravdess").rglob("*.wav")),
        "cremad_clips": sum(1 for _ in (raw / "cremad").rglob("*.flv")),
    }


def real_size_run(work: Path, scale: int) -> dict[str, object]:
    from dvc.utils.hydra import apply_overrides  # `-S`'s own parser and writer

    from affectpipe.features.backbones import save_real_size
    from affectpipe.reproducibility import platform_record

    repo = PipelineRepo.copy_of_project(work / "repo")
    models = work / "models"
    for kind in KINDS:
        if not (models / kind / "config.json").is_file():
            save_real_size(kind, models / kind)
    overrides = input_overrides(scale) + training_overrides() + model_overrides(models)
    apply_overrides(repo.root / "params.yaml", overrides)
    repo.commit("real-size run")
    print("dvc exp run " + " ".join(f"-S '{o}'" for o in overrides), flush=True)
    repo.env |= {"AFFECTPIPE_PROCESSES": "1", "AFFECTPIPE_CACHE": str(work / "cache")}
    rows = []
    for stage in stage_order(repo.root):
        rows.append(run_stage(repo, stage))
        print(f"{stage:45s} {rows[-1]['wall_s']:8.1f} s {rows[-1]['peak_rss_mib']:7d} MiB",
              flush=True)  # fmt: skip
    return {
        "machine": platform_record() | {"cores": os.cpu_count()},
        "scale": scale,
        "overrides": overrides,
        "inputs": raw_counts(repo.root),
        "stages": rows,
        "total_s": round(sum(r["wall_s"] for r in rows), 1),
    }


@app.command()
def main(
    work: Path = typer.Option(None, help="folder for the copy, models and data (default: temp)"),
    scale: int = typer.Option(1, min=1, max=8, help="actors per dataset x this"),
    out: Path = typer.Option(RESULTS, help="JSON written here"),
) -> None:
    if work is None:
        with tempfile.TemporaryDirectory(prefix="affectpipe-real-size-") as tmp:
            result = real_size_run(Path(tmp), scale)
    else:
        result = real_size_run(work, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"total {result['total_s']} s; inputs {result['inputs']}; written {out}")


if __name__ == "__main__":
    app()
