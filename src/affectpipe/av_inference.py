"""Audio-visual models over their cached pair embeddings: per-pair predictions of any split.

`evaluate` calls it on test folds (the only caller that does); training's validation pass
shares `collect_outputs`, so validation and test figures come from the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from affectpipe.calibration import calibration_from
from affectpipe.data.av_dataset import PairDataset, load_av_data, load_clip_embeddings, pair_frame
from affectpipe.data.pairs import PairConfig
from affectpipe.models.checkpoint import MODEL_FILE
from affectpipe.models.load import load_av_model
from affectpipe.models.multimodal import AVEmotionModel, head_probabilities
from affectpipe.problems import ProblemLog

Gather = Callable[[torch.Tensor], torch.Tensor]


def predict_av(
    ckpt_dir: Path, features_dir: Path, processed_dir: Path, splits: tuple[str, ...] = ("test",)
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Per split, one row per pair with true/predicted emotions, per-modality predictions, class
    probabilities (`prob_<emotion>`), congruence probability/label and kind (see
    `data.av_dataset.pair_frame`); and the checkpoint's provenance.

    Probabilities and the congruence verdict are calibrated by the checkpoint's own
    `Calibration` (its threshold included); the model's raw probabilities stay beside them
    (`raw_prob_<emotion>`, `congruence_prob_raw`).

    The pairs and features are those the checkpoint was trained against: same dataset, same
    test fold, and feature files whose provenance matches (else `StaleCacheError`), normalised
    per speaker when the checkpoint's config says so.
    """
    model, payload = load_av_model(Path(ckpt_dir))
    calibration = calibration_from(payload, Path(ckpt_dir) / MODEL_FILE)
    prov = payload["provenance"]
    data = load_av_data(
        Path(processed_dir),
        Path(features_dir) / prov["face_file"],
        Path(features_dir) / prov["voice_file"],
        model.cfg.classes,
        ProblemLog("skip"),
        prov["test_fold"],
        PairConfig(**prov["pairs"]) if prov.get("pairs") else None,
        prov.get("seed", 0),
        expect={k: prov[k] for k in ("face_features", "voice_features")},
        by_speaker=model.cfg.speaker_norm == "standardize",
        modality=model.cfg.modality,
    )
    frames = {}
    for split in splits:
        if split not in data.splits:
            raise ValueError(f"unknown split '{split}'; valid: {sorted(data.splits)}")
        loader = DataLoader(data.splits[split], batch_size=256, shuffle=False)
        raw = collect_outputs(model, loader)
        df = pair_frame(data.splits[split], calibration.apply(raw), calibration.threshold, raw)
        frames[split] = df.assign(dataset=prov["dataset"], model=prov["modality"])
    return frames, prov


def predict_pairs(
    ckpt_dir: Path, features_dir: Path, pairs: pd.DataFrame, log: ProblemLog, source: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`predict_av`'s per-pair table for pairs given here rather than drawn from `pairs.csv`
    (`data.pairs.PAIR_COLUMNS`; e.g. each rated clip's own face and voice), with the features
    the checkpoint names, checked against its provenance, calibrated like `predict_av`'s; and
    the checkpoint's provenance."""
    model, payload = load_av_model(Path(ckpt_dir))
    calibration = calibration_from(payload, Path(ckpt_dir) / MODEL_FILE)
    prov = payload["provenance"]
    face, voice = (
        load_clip_embeddings(
            Path(features_dir) / prov[f"{m}_file"],
            set(pairs[f"{m}_clip"]),
            log,
            prov[f"{m}_features"],
            speaker_norm=model.cfg.speaker_norm == "standardize",
        )
        for m in ("face", "voice")
    )
    data = PairDataset(pairs, face, voice, log, source)
    if len(data) == 0:
        return data.pairs.assign(dataset=prov["dataset"], model=prov["modality"]), prov
    raw = collect_outputs(model, DataLoader(data, batch_size=256, shuffle=False))
    frame = pair_frame(data, calibration.apply(raw), calibration.threshold, raw)
    return frame.assign(dataset=prov["dataset"], model=prov["modality"]), prov


@torch.no_grad()
def collect_outputs(
    model: AVEmotionModel, loader: DataLoader, gather: Gather | None = None
) -> dict[str, np.ndarray]:
    """Head probabilities and pair index of every pair in `loader`, as NumPy arrays; `gather`
    (Accelerate's `gather_for_metrics`) collects them from every process during training."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        probs = head_probabilities(model(face=batch["face"], voice=batch["voice"]))
        for k, v in {**probs, "index": batch["index"]}.items():
            parts.setdefault(k, []).append(gather(v) if gather else v)
    return {k: _numpy(torch.cat(v)) for k, v in parts.items()}


def _numpy(t: torch.Tensor) -> np.ndarray:
    """bf16/fp16 outputs (mixed precision) as float32, as NumPy has no bfloat16; float64 kept."""
    return (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).cpu().numpy()
