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
from affectpipe.data.pairs import PairConfig, make_pairs
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


def validate_pairs(clips: pd.DataFrame, pairs: pd.DataFrame, source: Path | str) -> None:
    """Refuse a pair table that contradicts the clip manifest.

    Congruent pairs are one clip's own face and voice; incongruent pairs differ in emotion, and
    hard ones share actor and statement. Labels must be the clips' own emotions.
    """
    by_id = clips.set_index("clip_id")
    unknown = sorted((set(pairs.face_clip) | set(pairs.voice_clip)) - set(by_id.index))
    if unknown:
        raise InputProblem(source, f"{len(unknown)} clip(s) not in clips.csv, e.g. {unknown[:3]}")
    face, voice = by_id.loc[pairs.face_clip], by_id.loc[pairs.voice_clip]
    kind = pairs.kind.to_numpy()
    checks = {
        "kind is not congruent/easy/hard": ~np.isin(kind, KINDS),
        "congruent flag disagrees with kind": (pairs.congruent.to_numpy() == 1)
        != (kind == "congruent"),
        "face_emotion is not the face clip's emotion": pairs.face_emotion.to_numpy()
        != face.emotion.to_numpy(),
        "voice_emotion is not the voice clip's emotion": pairs.voice_emotion.to_numpy()
        != voice.emotion.to_numpy(),
        "a congruent pair joins two different clips": (kind == "congruent")
        & (pairs.face_clip.to_numpy() != pairs.voice_clip.to_numpy()),
        "an incongruent pair has equal emotions": (kind != "congruent")
        & (pairs.face_emotion.to_numpy() == pairs.voice_emotion.to_numpy()),
        "a hard pair joins two actors": (kind == "hard")
        & (face.actor.to_numpy() != voice.actor.to_numpy()),
    }
    if "statement" in clips.columns:
        checks["a hard pair joins two statements"] = (kind == "hard") & (
            face.statement.astype(str).to_numpy() != voice.statement.astype(str).to_numpy())
    for problem, bad in checks.items():
        if bad.any():
            row = pairs[bad].iloc[0]
            raise InputProblem(source, f"{problem} ({int(bad.sum())} pair(s), e.g. "
                                       f"{row.face_clip}+{row.voice_clip})")


def fold_splits(clips: pd.DataFrame, test_fold: int | None) -> dict[str, str]:
    """clip_id -> split. None keeps preprocessing's split; fold k makes fold k the test set and
    the next fold (cyclically) validation, as preprocessing does for its configured fold."""
    if test_fold is None:
        return dict(zip(clips.clip_id, clips.split, strict=True))
    folds = sorted(int(f) for f in clips.fold.unique())
    if test_fold not in folds:
        raise ValueError(f"test fold {test_fold} not among the manifest's folds {folds}")
    val_fold = folds[(folds.index(test_fold) + 1) % len(folds)]
    role = {test_fold: "test", val_fold: "val"}
    return {c: role.get(f, "train") for c, f in zip(clips.clip_id, clips.fold, strict=True)}


def configured_test_fold(clips: pd.DataFrame) -> int:
    """The fold preprocessing made the test split."""
    folds = clips.loc[clips.split == "test", "fold"].unique()
    if len(folds) != 1:
        raise InputProblem("clips.csv", f"test split spans folds {sorted(folds)}, expected one")
    return int(folds[0])


def split_pairs(clips: pd.DataFrame, pairs: pd.DataFrame, test_fold: int | None = None,
                pair_cfg: PairConfig | None = None,
                seed: int = 0) -> tuple[dict[str, pd.DataFrame], int]:
    """Pairs per split, speaker-independent; returns (splits, pairs dropped).

    `test_fold=None` keeps preprocessing's splits and pairs. Another fold re-splits the clips by
    actor fold; with `pair_cfg` its pairs are drawn afresh as preprocessing draws them
    (`affectpipe.data.pairs.make_pairs`, same ratio and seed), otherwise the existing pairs are
    reused and easy pairs that straddle the new split boundary are dropped (congruent and
    same-actor hard pairs never straddle it). Raises if an actor would appear in two splits.
    """
    split_of = fold_splits(clips, test_fold)
    actor_splits = pd.DataFrame({"actor": clips.actor, "split": clips.clip_id.map(split_of)})
    shared = actor_splits.groupby("actor").split.nunique()
    if (shared > 1).any():
        raise InputProblem("clips.csv", f"actor(s) {sorted(shared[shared > 1].index)[:5]} "
                                        "appear in more than one split")
    if test_fold is not None and pair_cfg is not None:
        pairs = make_pairs(clips.assign(split=clips.clip_id.map(split_of)), pair_cfg, seed)
    face_split = pairs.face_clip.map(split_of)
    voice_split = pairs.voice_clip.map(split_of)
    if test_fold is None and (face_split != pairs.split).any():
        raise InputProblem("pairs.csv", "a pair's split differs from its clip's split")
    same = face_split == voice_split
    out = {s: pairs[same & (face_split == s)].reset_index(drop=True)
           for s in ("train", "val", "test")}
    return out, int((~same).sum())


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


# --- training entry -----------------------------------------------------------------------------


@dataclass
class AVData:
    """Everything one training run reads: pair datasets per split and provenance."""

    splits: dict[str, PairDataset]
    classes: list[int]
    dims: tuple[int, int]
    test_fold: int
    dropped_pairs: int
    provenance: dict


def load_av_data(processed_dir: Path, face_path: Path, voice_path: Path, classes: list[int],
                 log: ProblemLog, test_fold: int | None = None,
                 pair_cfg: PairConfig | None = None, seed: int = 0) -> AVData:
    """Read manifests and cached embeddings; build the per-split pair datasets.

    `test_fold` None (or preprocessing's own test fold) uses `pairs.csv` as written; another
    fold re-splits by actor fold and redraws pairs with `pair_cfg` (see `split_pairs`).
    """
    clips = read_table(processed_dir / "clips.csv", CLIP_COLUMNS)
    pairs = read_table(processed_dir / "pairs.csv", PAIR_COLUMNS)
    validate_pairs(clips, pairs, processed_dir / "pairs.csv")
    fold = configured_test_fold(clips) if test_fold is None else test_fold
    own = fold == configured_test_fold(clips)
    by_split, dropped = split_pairs(clips, pairs, None if own else fold, pair_cfg, seed)
    used = pd.concat(by_split.values())
    needed_f, needed_v = set(used.face_clip), set(used.voice_clip)
    face = load_clip_embeddings(face_path, needed_f, log)
    voice = load_clip_embeddings(voice_path, needed_v, log)
    splits = {s: PairDataset(p, face, voice, log, str(processed_dir / "pairs.csv"))
              for s, p in by_split.items()}
    for s, ds in splits.items():
        check_labels(ds, classes, str(processed_dir / "pairs.csv"))
        if len(ds) == 0:
            raise InputProblem(processed_dir / "pairs.csv", f"no usable pairs in split '{s}'")
    dims = (splits["train"].face.shape[1], splits["train"].voice.shape[1])
    provenance = {}
    for name, path in (("face", face_path), ("voice", voice_path)):
        from affectpipe.features.store import open_features

        with open_features(path) as r:
            provenance[f"{name}_features"] = {k: r.attrs[k] for k in sorted(r.attrs)
                                              if k in ("backbone", "spec", "config_hash")}
    return AVData(splits, list(classes), dims, fold, dropped, provenance)


def validation_score(m: dict, modality: str) -> float:
    """Model selection: emotion UAR; the fusion model averages it with congruence ROC-AUC."""
    if modality == "fusion" and m.get("congruence_auc") is not None:
        return (m["uar"] + m["congruence_auc"]) / 2
    return m["uar"]


def evaluate(model: AVEmotionModel, dataset: PairDataset, classes: list[int],
             batch_size: int = 256) -> tuple[pd.DataFrame, dict]:
    """Predictions (one row per pair) and their flat metrics."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    df = pair_frame(dataset, collect_outputs(model, loader))
    return df, av_test_metrics(df, classes)


@dataclass
class TrainConfig:
    """Optimisation of one multimodal run (the `multimodal.train` params)."""

    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    patience: int = 15  # epochs without a better validation score before stopping


def step_fn(model: AVEmotionModel, batch: Tensors, loss_cfg: LossConfig,
            weights: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """One training step's loss and its logged parts (the optimiser is the loop's business)."""
    out = model(**model_inputs(model, batch))
    loss, parts = av_loss(out, batch, loss_cfg, weights)
    return loss, {f"loss_{k}": float(v.detach()) for k, v in parts.items()}


def fit_av(model: AVEmotionModel, data: AVData, loss_cfg: LossConfig, cfg: TrainConfig,
           live_dir: Path | None = None, seed: int = 0) -> dict:
    """Train on data.splits['train'], select on 'val'; returns the best validation metrics."""
    from affectpipe.seeding import seed_everything

    seed_everything(seed)
    weights = loss_weights(data.splits["train"], data.classes, loss_cfg)
    loader = DataLoader(data.splits["train"], batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best: tuple[float, dict, dict] | None = None
    stale = 0
    for _epoch in range(cfg.epochs):
        model.train()
        for batch in loader:
            loss, _ = step_fn(model, batch, loss_cfg, weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
        _, val = evaluate(model, data.splits["val"], data.classes)
        score = validation_score(val, model.cfg.modality)
        if best is None or score > best[0]:
            best = (score, {k: v.clone() for k, v in model.state_dict().items()}, val)
            stale = 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    assert best is not None, "fit_av ran no epoch"
    model.load_state_dict(best[1])
    return best[2]
