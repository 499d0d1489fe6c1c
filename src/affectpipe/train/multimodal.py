"""Training and inference of the face/voice emotion and congruence models on cached features.

Samples are the congruence pairs of `data/processed/<ds>/pairs.csv`: the face embedding of
`face_clip` (VideoMAE) with the voice embedding of `voice_clip` (wav2vec2). Targets per pair:
- `face_emotion` / `voice_emotion` for the per-modality heads, on every pair;
- the fused `emotion` only on congruent pairs: an incongruent pair has no single true emotion (the
  face says one thing, the voice another), so its fused target is ignored (-100) and it teaches
  the model through the per-modality heads and the congruence head only;
- `congruent` (1/0) for the congruence head, on every pair.
No backbone runs here: the embeddings are read once from the HDF5 feature store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from affectpipe import metrics
from affectpipe.data.labels import EMOTIONS, N_EMOTIONS
from affectpipe.models.multimodal import AVEmotionModel, AVModelConfig
from affectpipe.problems import InputProblem, ProblemLog

IGNORE = -100  # F.cross_entropy's ignore_index: the fused target of incongruent pairs
KINDS: tuple[str, ...] = ("congruent", "easy", "hard")
PAIR_COLUMNS = ("split", "face_clip", "voice_clip", "kind", "congruent", "face_emotion",
                "voice_emotion")
CLIP_COLUMNS = ("clip_id", "actor", "emotion", "fold", "split")


@dataclass
class LossConfig:
    """Weights of the loss terms: emotion CE + modality CEs + weighted congruence BCE."""

    w_emotion: float = 1.0  # fused emotion CE (congruent pairs)
    w_modality: float = 0.5  # face CE + voice CE (every pair)
    w_congruence: float = 0.5  # congruence BCE (every pair)
    balance: str = "weights"  # weights: inverse-frequency class weights | none

    def __post_init__(self) -> None:
        if self.balance not in ("weights", "none"):
            raise ValueError(f"unknown balance '{self.balance}'; valid: ['weights', 'none']")


# --- data --------------------------------------------------------------------------------------


def read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a processed CSV, naming the file and the missing columns if it is not one."""
    if not path.is_file():
        raise InputProblem(path, "file not found (run the preprocess stage first)")
    df = pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputProblem(path, f"missing column(s) {missing}; has {list(df.columns)}")
    return df


def load_clip_embeddings(path: Path, clip_ids: set[str], log: ProblemLog) -> dict[str, np.ndarray]:
    """One vector per clip from a feature file: rows are mean-pooled ((n, dim) -> (dim,))."""
    from affectpipe.features.store import open_features

    out: dict[str, np.ndarray] = {}
    with open_features(path) as reader:
        available = set(reader.clip_ids)
        for clip_id in sorted(clip_ids):
            if clip_id not in available:
                log.report(InputProblem(path, f"no features for clip '{clip_id}'"))
                continue
            out[clip_id] = np.asarray(reader[clip_id], dtype=np.float32).mean(axis=0)
    return out


class PairDataset(Dataset):
    """(face, voice) embedding pairs with their four targets, held as tensors."""

    def __init__(self, pairs: pd.DataFrame, face: dict[str, np.ndarray],
                 voice: dict[str, np.ndarray], log: ProblemLog, source: str = "pairs.csv"):
        keep = []
        for row in pairs.itertuples(index=False):
            lacking = [c for c, d in ((row.face_clip, face), (row.voice_clip, voice)) if c not in d]
            if lacking:
                log.report(InputProblem(source, f"pair {row.face_clip}+{row.voice_clip} skipped: "
                                                f"no features for {lacking}"))
            else:
                keep.append(row)
        self.pairs = pd.DataFrame(keep, columns=pairs.columns).reset_index(drop=True)
        p = self.pairs
        dim_f = next(iter(face.values())).shape[-1] if face else 0
        dim_v = next(iter(voice.values())).shape[-1] if voice else 0
        self.face = torch.from_numpy(np.stack([face[c] for c in p.face_clip])
                                     if len(p) else np.zeros((0, dim_f), np.float32))
        self.voice = torch.from_numpy(np.stack([voice[c] for c in p.voice_clip])
                                      if len(p) else np.zeros((0, dim_v), np.float32))
        self.face_emotion = torch.as_tensor(p.face_emotion.to_numpy(copy=True), dtype=torch.long)
        self.voice_emotion = torch.as_tensor(p.voice_emotion.to_numpy(copy=True), dtype=torch.long)
        self.congruent = torch.as_tensor(p.congruent.to_numpy(copy=True), dtype=torch.float32)
        self.emotion = torch.where(self.congruent > 0, self.face_emotion, IGNORE)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"face": self.face[i], "voice": self.voice[i], "emotion": self.emotion[i],
                "face_emotion": self.face_emotion[i], "voice_emotion": self.voice_emotion[i],
                "congruent": self.congruent[i], "index": torch.tensor(i)}


def check_labels(dataset: PairDataset, classes: list[int], source: str) -> None:
    """Every emotion label must be one of the dataset's classes (no silent masking of targets)."""
    labels = torch.cat([dataset.face_emotion, dataset.voice_emotion]).unique().tolist()
    bad = sorted(set(labels) - set(classes))
    if bad:
        raise InputProblem(source, f"emotion ids {bad} are not among the classes {classes}")


def class_weights(targets: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """Inverse-frequency weights over the 8 ids: mean 1 over present classes, 0 for absent."""
    t = targets[targets != IGNORE]
    counts = torch.bincount(t, minlength=N_EMOTIONS).double()
    w = torch.zeros(N_EMOTIONS, dtype=torch.float64)
    idx = torch.tensor(classes)
    seen = idx[counts[idx] > 0]
    w[seen] = 1.0 / counts[seen]
    w[seen] = w[seen] * len(seen) / w[seen].sum()
    return w.float()


# --- loss, step and evaluation ------------------------------------------------------------------


Tensors = dict[str, torch.Tensor]


def av_loss(out: Tensors, batch: Tensors, cfg: LossConfig,
            weights: dict[str, torch.Tensor | None]) -> tuple[torch.Tensor, Tensors]:
    """Weighted sum of the loss terms the model has heads for; returns (loss, weighted terms).

    `weights` holds the class weights per head (`emotion`, `face_emotion`, `voice_emotion`) and
    `pos_weight` for the congruence BCE (n_incongruent / n_congruent), each possibly None.
    """
    parts: dict[str, torch.Tensor] = {}
    if "congruence" in out and (batch["emotion"] != IGNORE).any():
        parts["emotion"] = cfg.w_emotion * F.cross_entropy(
            out["emotion"], batch["emotion"], weight=weights.get("emotion"), ignore_index=IGNORE)
    for head in ("face_emotion", "voice_emotion"):
        if head in out:
            # baselines have only their modality head: it carries the whole emotion weight
            w = cfg.w_modality if "congruence" in out else cfg.w_emotion
            parts[head] = w * F.cross_entropy(out[head], batch[head], weight=weights.get(head))
    if "congruence" in out:
        parts["congruence"] = cfg.w_congruence * F.binary_cross_entropy_with_logits(
            out["congruence"], batch["congruent"], pos_weight=weights.get("pos_weight"))
    loss = torch.stack(list(parts.values())).sum()
    return loss, parts


def loss_weights(train: PairDataset, classes: list[int], cfg: LossConfig) -> dict:
    """Class weights per head and the congruence pos_weight, from the training pairs."""
    if cfg.balance == "none":
        return {}
    n_pos = float(train.congruent.sum())
    n_neg = float(len(train) - n_pos)
    return {
        "emotion": class_weights(train.emotion, classes),
        "face_emotion": class_weights(train.face_emotion, classes),
        "voice_emotion": class_weights(train.voice_emotion, classes),
        "pos_weight": torch.tensor(n_neg / max(n_pos, 1.0)),
    }


def model_inputs(model: AVEmotionModel, batch: dict) -> dict[str, torch.Tensor | None]:
    return {"face": batch["face"] if model.uses_face else None,
            "voice": batch["voice"] if model.uses_voice else None}


@torch.no_grad()
def collect_outputs(model: AVEmotionModel, loader: DataLoader) -> dict[str, np.ndarray]:
    """Run the model over a loader; concatenate probabilities and targets as NumPy arrays."""
    model.eval()
    rows: dict[str, list[np.ndarray]] = {}
    for batch in loader:
        out = model(**model_inputs(model, batch))
        for k in ("emotion", "face_emotion", "voice_emotion"):
            if k in out:
                rows.setdefault(f"{k}_prob", []).append(out[k].float().softmax(-1).cpu().numpy())
        if "congruence" in out:
            rows.setdefault("congruence_prob", []).append(
                torch.sigmoid(out["congruence"].float()).cpu().numpy())
        rows.setdefault("index", []).append(batch["index"].cpu().numpy())
    return {k: np.concatenate(v) for k, v in rows.items()}


def pair_frame(dataset: PairDataset, outputs: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per pair: ids, kind, true labels, predictions and class probabilities."""
    df = dataset.pairs.iloc[outputs["index"]].reset_index(drop=True).copy()
    df["emotion_true"] = np.where(df.congruent == 1, df.face_emotion, IGNORE)
    df["emotion_pred"] = outputs["emotion_prob"].argmax(1)
    for head in ("face_emotion", "voice_emotion"):
        if f"{head}_prob" in outputs:
            df[f"{head}_pred"] = outputs[f"{head}_prob"].argmax(1)
    for c, name in enumerate(EMOTIONS):
        df[f"prob_{name}"] = outputs["emotion_prob"][:, c]
    if "congruence_prob" in outputs:
        df["congruence_prob"] = outputs["congruence_prob"]
        df["congruence_pred"] = (outputs["congruence_prob"] >= 0.5).astype(int)
    return df


def av_test_metrics(df: pd.DataFrame, classes: list[int]) -> dict[str, float]:
    """Flat metrics of a `pair_frame`: fused emotion (congruent pairs), per-modality emotion
    (all pairs: `face_*`, `voice_*`), congruence (overall, `_easy`, `_hard`), confusion cells
    (`cm_<true>_<pred>`) and the chance and majority baselines (`chance_*`; majority needs
    training labels, see `majority_metrics`)."""
    names = [EMOTIONS[c] for c in classes]
    cong = df[df.congruent == 1]
    out = metrics.emotion_metrics(cong.emotion_true, cong.emotion_pred, classes, names)
    cm = metrics.confusion_matrix(cong.emotion_true, cong.emotion_pred, classes)
    out |= {f"cm_{names[i]}_{names[j]}": int(cm[i, j]) for i in range(len(classes))
            for j in range(len(classes))}
    for head, short in (("face_emotion", "face"), ("voice_emotion", "voice")):
        if f"{head}_pred" in df:
            out[f"{short}_accuracy"] = metrics.accuracy(df[head], df[f"{head}_pred"])
            out[f"{short}_uar"] = metrics.balanced_accuracy(df[head], df[f"{head}_pred"], classes)
    if "congruence_prob" in df:
        out |= metrics.congruence_metrics(df.congruent, df.congruence_prob, df.kind)
    chance = metrics.chance_baseline(cong.emotion_true, classes)
    out |= {f"chance_{k}": v for k, v in chance.items()}
    out["n_pairs"], out["n_congruent"] = len(df), len(cong)
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}


def majority_metrics(train: pd.DataFrame, test: pd.DataFrame, classes: list[int]) -> dict:
    """Majority-class baseline of the fused emotion: train on congruent training pairs."""
    tr, te = train[train.congruent == 1], test[test.congruent == 1]
    base = metrics.majority_baseline(tr.face_emotion, te.face_emotion, classes)
    return {f"majority_{k}": v for k, v in base.items()}


def model_config(modality: str, face_dim: int, voice_dim: int, classes: list[int],
                 model_params: dict) -> AVModelConfig:
    """The model config of one variant: dims from the features, the rest from params."""
    return AVModelConfig(face_dim=face_dim, voice_dim=voice_dim, modality=modality,
                         classes=list(classes), **model_params)


def config_dict(cfg: AVModelConfig) -> dict:
    return asdict(cfg)
