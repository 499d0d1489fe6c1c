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

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from affectpipe import metrics
from affectpipe.config import ConfigError, from_section
from affectpipe.data.labels import CREMAD_CLASSES, EMOTIONS, N_EMOTIONS, RAVDESS_CLASSES
from affectpipe.data.pairs import PAIR_COLUMNS, PairConfig, make_pairs
from affectpipe.data.splits import configured_test_fold, fold_splits
from affectpipe.models.multimodal import AVEmotionModel, AVModelConfig
from affectpipe.problems import InputProblem, ProblemLog, write_json
from affectpipe.seeding import seed_everything

IGNORE = -100  # F.cross_entropy's ignore_index: the fused target of incongruent pairs
KINDS: tuple[str, ...] = ("congruent", "easy", "hard")
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


def read_table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a processed CSV, naming the file and the missing columns if it is not one."""
    if not path.is_file():
        raise InputProblem(path, "file not found (run the preprocess stage first)")
    df = pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputProblem(path, f"missing column(s) {missing}; has {list(df.columns)}")
    return df


def load_clip_embeddings(
    path: Path, clip_ids: set[str], log: ProblemLog, expect: dict | None = None
) -> dict[str, np.ndarray]:
    """One vector per clip from a feature file: rows are mean-pooled ((n, dim) -> (dim,)).

    `expect` (provenance attributes, e.g. from a checkpoint) refuses features made otherwise.
    """
    from affectpipe.features.store import open_features

    out: dict[str, np.ndarray] = {}
    with open_features(path, expect) as reader:
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
            face.statement.astype(str).to_numpy() != voice.statement.astype(str).to_numpy()
        )
    for problem, bad in checks.items():
        if bad.any():
            row = pairs[bad].iloc[0]
            raise InputProblem(
                source,
                f"{problem} ({int(bad.sum())} pair(s), e.g. {row.face_clip}+{row.voice_clip})",
            )


def split_pairs(
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    test_fold: int | None = None,
    pair_cfg: PairConfig | None = None,
    seed: int = 0,
) -> tuple[dict[str, pd.DataFrame], int]:
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
        raise InputProblem(
            "clips.csv",
            f"actor(s) {sorted(shared[shared > 1].index)[:5]} appear in more than one split",
        )
    if test_fold is not None and pair_cfg is not None:
        pairs = make_pairs(clips.assign(split=clips.clip_id.map(split_of)), pair_cfg, seed)
    face_split = pairs.face_clip.map(split_of)
    voice_split = pairs.voice_clip.map(split_of)
    if test_fold is None and (face_split != pairs.split).any():
        raise InputProblem("pairs.csv", "a pair's split differs from its clip's split")
    same = face_split == voice_split
    out = {
        s: pairs[same & (face_split == s)].reset_index(drop=True) for s in ("train", "val", "test")
    }
    return out, int((~same).sum())


class PairDataset(Dataset):
    """(face, voice) embedding pairs with their four targets, held as tensors."""

    def __init__(
        self,
        pairs: pd.DataFrame,
        face: dict[str, np.ndarray],
        voice: dict[str, np.ndarray],
        log: ProblemLog,
        source: str = "pairs.csv",
    ):
        keep = []
        for row in pairs.itertuples(index=False):
            lacking = [c for c, d in ((row.face_clip, face), (row.voice_clip, voice)) if c not in d]
            if lacking:
                log.report(
                    InputProblem(
                        source,
                        f"pair {row.face_clip}+{row.voice_clip} skipped: no features for {lacking}",
                    )
                )
            else:
                keep.append(row)
        self.pairs = pd.DataFrame(keep, columns=pairs.columns).reset_index(drop=True)
        p = self.pairs
        dim_f = next(iter(face.values())).shape[-1] if face else 0
        dim_v = next(iter(voice.values())).shape[-1] if voice else 0
        self.face = torch.from_numpy(
            np.stack([face[c] for c in p.face_clip]) if len(p) else np.zeros((0, dim_f), np.float32)
        )
        self.voice = torch.from_numpy(
            np.stack([voice[c] for c in p.voice_clip])
            if len(p)
            else np.zeros((0, dim_v), np.float32)
        )
        self.face_emotion = torch.as_tensor(p.face_emotion.to_numpy(copy=True), dtype=torch.long)
        self.voice_emotion = torch.as_tensor(p.voice_emotion.to_numpy(copy=True), dtype=torch.long)
        self.congruent = torch.as_tensor(p.congruent.to_numpy(copy=True), dtype=torch.float32)
        self.emotion = torch.where(self.congruent > 0, self.face_emotion, IGNORE)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "face": self.face[i],
            "voice": self.voice[i],
            "emotion": self.emotion[i],
            "face_emotion": self.face_emotion[i],
            "voice_emotion": self.voice_emotion[i],
            "congruent": self.congruent[i],
            "index": torch.tensor(i),
        }


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


def av_loss(
    out: Tensors, batch: Tensors, cfg: LossConfig, weights: dict[str, torch.Tensor | None]
) -> tuple[torch.Tensor, Tensors]:
    """Weighted sum of the loss terms the model has heads for; returns (loss, weighted terms).

    `weights` holds the class weights per head (`emotion`, `face_emotion`, `voice_emotion`) and
    `pos_weight` for the congruence BCE (n_incongruent / n_congruent), each possibly None.
    """
    parts: dict[str, torch.Tensor] = {}
    if "congruence" in out and (batch["emotion"] != IGNORE).any():
        parts["emotion"] = cfg.w_emotion * F.cross_entropy(
            out["emotion"], batch["emotion"], weight=weights.get("emotion"), ignore_index=IGNORE
        )
    for head in ("face_emotion", "voice_emotion"):
        if head in out:
            # baselines have only their modality head: it carries the whole emotion weight
            w = cfg.w_modality if "congruence" in out else cfg.w_emotion
            parts[head] = w * F.cross_entropy(out[head], batch[head], weight=weights.get(head))
    if "congruence" in out:
        parts["congruence"] = cfg.w_congruence * F.binary_cross_entropy_with_logits(
            out["congruence"], batch["congruent"], pos_weight=weights.get("pos_weight")
        )
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
    from affectpipe.train.loop import unwrap

    bare = unwrap(model)  # several processes: the model arrives wrapped for gradient sync
    return {
        "face": batch["face"] if bare.uses_face else None,
        "voice": batch["voice"] if bare.uses_voice else None,
    }


@torch.no_grad()
def outputs_of(model: AVEmotionModel, batch: Tensors) -> Tensors:
    """Class probabilities, congruence probability and pair index of one batch."""
    out = model(**model_inputs(model, batch))
    probs = {
        f"{k}_prob": out[k].float().softmax(-1)
        for k in ("emotion", "face_emotion", "voice_emotion")
        if k in out
    }
    if "congruence" in out:
        probs["congruence_prob"] = torch.sigmoid(out["congruence"].float())
    return {**probs, "index": batch["index"]}


@torch.no_grad()
def collect_outputs(model: AVEmotionModel, loader: DataLoader) -> dict[str, np.ndarray]:
    """Run the model over a loader (one process); concatenate outputs as NumPy arrays."""
    model.eval()
    rows: dict[str, list[np.ndarray]] = {}
    for batch in loader:
        for k, v in outputs_of(model, batch).items():
            rows.setdefault(k, []).append(v.cpu().numpy())
    return {k: np.concatenate(v) for k, v in rows.items()}


def pair_frame(dataset: PairDataset, outputs: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per pair: ids, kind, true labels, predictions and class probabilities."""
    df = dataset.pairs.iloc[outputs["index"].astype(np.int64)].reset_index(drop=True).copy()
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
    out |= {
        f"cm_{names[i]}_{names[j]}": int(cm[i, j])
        for i in range(len(classes))
        for j in range(len(classes))
    }
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


def model_config(
    modality: str, face_dim: int, voice_dim: int, classes: list[int], model_params: dict
) -> AVModelConfig:
    """The model config of one variant: dims from the features, the rest from params."""
    return AVModelConfig(
        face_dim=face_dim,
        voice_dim=voice_dim,
        modality=modality,
        classes=list(classes),
        **model_params,
    )


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


def load_av_data(
    processed_dir: Path,
    face_path: Path,
    voice_path: Path,
    classes: list[int],
    log: ProblemLog,
    test_fold: int | None = None,
    pair_cfg: PairConfig | None = None,
    seed: int = 0,
    expect: dict[str, dict] | None = None,
) -> AVData:
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
    expect = expect or {}
    face = load_clip_embeddings(face_path, needed_f, log, expect.get("face_features"))
    voice = load_clip_embeddings(voice_path, needed_v, log, expect.get("voice_features"))
    splits = {
        s: PairDataset(p, face, voice, log, str(processed_dir / "pairs.csv"))
        for s, p in by_split.items()
    }
    for s, ds in splits.items():
        check_labels(ds, classes, str(processed_dir / "pairs.csv"))
        if len(ds) == 0:
            raise InputProblem(processed_dir / "pairs.csv", f"no usable pairs in split '{s}'")
    dims = (splits["train"].face.shape[1], splits["train"].voice.shape[1])
    provenance = {}
    for name, path in (("face", face_path), ("voice", voice_path)):
        from affectpipe.features.store import open_features

        with open_features(path) as r:
            keys = ("backbone", "spec", "config_hash", "preprocessing", "source_settings")
            provenance[f"{name}_features"] = {k: r.attrs[k] for k in keys if k in r.attrs}
    return AVData(splits, list(classes), dims, fold, dropped, provenance)


def validation_score(m: dict, modality: str) -> float:
    """Model selection: emotion UAR; the fusion model averages it with congruence ROC-AUC."""
    if modality == "fusion" and m.get("congruence_auc") is not None:
        return (m["uar"] + m["congruence_auc"]) / 2
    return m["uar"]


def step_fn(
    model: AVEmotionModel, batch: Tensors, loss_cfg: LossConfig, weights: dict
) -> dict[str, torch.Tensor]:
    """One forward pass for `loop.fit`: {"loss": total, "loss_<term>": each weighted term}."""
    out = model(**model_inputs(model, batch))
    loss, parts = av_loss(out, batch, loss_cfg, weights)
    return {"loss": loss, **{f"loss_{k}": v for k, v in parts.items()}}


def eval_fn(
    model: AVEmotionModel, loader: DataLoader, accelerator, dataset: PairDataset, classes: list[int]
) -> dict[str, float]:
    """Validation metrics for `loop.fit` over the whole set (gathered across processes)."""
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        for k, v in outputs_of(model, batch).items():
            parts.setdefault(k, []).append(accelerator.gather_for_metrics(v))
    outputs = {k: torch.cat(v).float().cpu().numpy() for k, v in parts.items()}
    m = av_test_metrics(pair_frame(dataset, outputs), classes)
    keep = (
        "accuracy",
        "uar",
        "macro_f1",
        "face_accuracy",
        "voice_accuracy",
        "congruence_auc",
        "congruence_accuracy",
    )
    out = {k: float(m[k]) for k in keep if m.get(k) is not None}
    out["score"] = validation_score(m, accelerator.unwrap_model(model).cfg.modality)
    return out


def fit_av(
    model: AVEmotionModel,
    data: AVData,
    loss_cfg: LossConfig,
    loop_cfg,
    batch_size: int,
    ckpt_dir: Path,
    live_dir: Path | None = None,
    provenance: dict | None = None,
    label: str = "",
):
    """Train with the shared loop (`affectpipe.train.loop.fit`); select on `val/score`."""
    from affectpipe.train.loop import fit

    weights = loss_weights(data.splits["train"], data.classes, loss_cfg)
    clips = data.splits["train"]  # statistics over clips, each once: congruent pairs
    own = clips.congruent > 0
    model.set_feature_stats(clips.face[own], clips.voice[own])
    train = DataLoader(
        data.splits["train"],
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(loop_cfg.seed),
    )
    val = DataLoader(data.splits["val"], batch_size=256, shuffle=False)

    def step(m, batch):
        w = {k: v.to(batch["face"].device) for k, v in weights.items()}
        return step_fn(m, batch, loss_cfg, w)

    def evaluate_val(m, loader, acc):
        return eval_fn(m, loader, acc, data.splits["val"], data.classes)

    return fit(
        model,
        train,
        val,
        step,
        evaluate_val,
        loop_cfg,
        live_dir,
        ckpt_dir,
        config=asdict(model.cfg),
        provenance=provenance,
        label=label,
    )


# --- the stage's entry: one model on one dataset, one fold or all -------------------------------

DATASET_CLASSES: dict[str, tuple[int, ...]] = {"ravdess": RAVDESS_CLASSES, "cremad": CREMAD_CLASSES}
FOLD_MODES: tuple[str, ...] = ("configured", "all")
CV_KEYS = (
    "accuracy",
    "uar",
    "macro_f1",
    "weighted_f1",
    "face_accuracy",
    "voice_accuracy",
    "congruence_accuracy",
    "congruence_f1",
    "congruence_auc",
    "congruence_auc_easy",
    "congruence_auc_hard",
)


@dataclass
class MultimodalConfig:
    """The `multimodal` params section."""

    face_features: str = "videomae"  # backbone names of the cached features
    voice_features: str = "wav2vec2"
    folds: str = "configured"  # configured: preprocessing's test fold | all: every fold
    bad_input: str = "strict"  # strict | skip (pairs whose clips lack features)
    model: dict = field(default_factory=dict)  # AVModelConfig keys except dims/modality/classes
    loss: LossConfig = field(default_factory=LossConfig)
    train: dict = field(default_factory=dict)  # batch_size + LoopConfig keys

    def __post_init__(self) -> None:
        if self.folds not in FOLD_MODES:
            raise ValueError(f"unknown folds '{self.folds}'; valid: {list(FOLD_MODES)}")


def multimodal_config(values: dict, name: str = "multimodal") -> MultimodalConfig:
    """Build the config from params, nested `loss` included; unknown keys fail by name."""
    values = dict(values)
    values["loss"] = from_section(LossConfig, values.get("loss", {}), f"{name}.loss")
    cfg = from_section(MultimodalConfig, values, name)
    model_keys = {"hidden", "fusion", "projector", "congruence", "dropout", "attention_heads"}
    unknown = sorted(set(cfg.model) - model_keys)
    if unknown:
        raise ConfigError(
            f"params '{name}.model': unknown key(s) {unknown}; valid keys: {sorted(model_keys)}"
        )
    loop_config(cfg.train, 0, f"{name}.train")  # validate now, not after loading data
    return cfg


def loop_config(train: dict, seed: int, name: str = "multimodal.train"):
    """(LoopConfig, batch_size) from the `train` params; selection is on `val/score`."""
    from affectpipe.train.loop import LoopConfig

    values = dict(train)
    if "batch_size" not in values:
        raise ConfigError(f"params '{name}': missing key(s) ['batch_size']")
    batch_size = int(values.pop("batch_size"))
    values |= {"monitor": "val/score", "mode": "max", "seed": seed}
    return from_section(LoopConfig, values, name), batch_size


def dataset_classes(dataset: str) -> list[int]:
    if dataset not in DATASET_CLASSES:
        raise ValueError(f"unknown dataset '{dataset}'; valid: {sorted(DATASET_CLASSES)}")
    return list(DATASET_CLASSES[dataset])


def feature_paths(features_dir: Path, dataset: str, face: str, voice: str) -> tuple[Path, Path]:
    return features_dir / f"{face}_{dataset}.h5", features_dir / f"{voice}_{dataset}.h5"


def train_one(
    modality: str,
    dataset: str,
    cfg: MultimodalConfig,
    processed_dir: Path,
    features_dir: Path,
    ckpt_dir: Path,
    live_dir: Path | None,
    seed: int,
    test_fold: int | None = None,
    pair_cfg: PairConfig | None = None,
) -> dict:
    """Train one model for one test fold; returns its report (validation metrics, counts)."""
    classes = dataset_classes(dataset)
    log = ProblemLog(cfg.bad_input)
    face_path, voice_path = feature_paths(
        features_dir, dataset, cfg.face_features, cfg.voice_features
    )
    data = load_av_data(
        processed_dir, face_path, voice_path, classes, log, test_fold, pair_cfg, seed
    )
    seed_everything(seed)  # torch's start-up seed is random: seed before the weights exist
    model = AVEmotionModel(model_config(modality, *data.dims, classes, cfg.model))
    loop_cfg, batch_size = loop_config(cfg.train, seed)
    provenance = {
        "dataset": dataset,
        "modality": modality,
        "test_fold": data.test_fold,
        "face_file": face_path.name,
        "voice_file": voice_path.name,
        "pairs": asdict(pair_cfg) if pair_cfg else None,
        "seed": seed,
        **data.provenance,
    }
    result = fit_av(
        model,
        data,
        loss_cfg=cfg.loss,
        loop_cfg=loop_cfg,
        batch_size=batch_size,
        ckpt_dir=ckpt_dir,
        live_dir=live_dir,
        provenance=provenance,
        label=f"{modality} {dataset} fold {data.test_fold}",
    )
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "test_fold": data.test_fold,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "parameters": n_params,
        "val": {
            k.removeprefix("val/"): v
            for k, v in result.best_metrics.items()
            if k.startswith("val/")
        },
        "pairs": {s: len(d) for s, d in data.splits.items()},
        "dropped_pairs": data.dropped_pairs,
        "skipped": log.to_json(),
    }


def train_multimodal(
    modality: str,
    dataset: str,
    cfg: MultimodalConfig,
    processed_dir: Path,
    features_dir: Path,
    ckpt_dir: Path,
    live_dir: Path | None,
    seed: int,
    pair_cfg: PairConfig | None = None,
) -> dict:
    """The configured test fold into `ckpt_dir`; with `folds: all` also every other fold into
    `ckpt_dir/fold<k>`, each scored on its own test split, and `cv.json` with mean and std."""
    report = train_one(
        modality, dataset, cfg, processed_dir, features_dir, ckpt_dir, live_dir, seed
    )
    if cfg.folds == "all":
        clips = read_table(processed_dir / "clips.csv", CLIP_COLUMNS)
        per_fold = {}
        for k in sorted(int(f) for f in clips.fold.unique()):
            folder = ckpt_dir if k == report["test_fold"] else ckpt_dir / f"fold{k}"
            if folder != ckpt_dir:
                train_one(
                    modality,
                    dataset,
                    cfg,
                    processed_dir,
                    features_dir,
                    folder,
                    None,
                    seed,
                    k,
                    pair_cfg,
                )
            per_fold[k] = av_test_metrics(
                predict_av(folder, features_dir, processed_dir), dataset_classes(dataset)
            )
        report["cv"] = fold_summary(per_fold)
    if os.environ.get("RANK", "0") == "0":  # several processes: the main one writes
        if "cv" in report:
            write_json(ckpt_dir / "cv.json", report["cv"])
        write_json(ckpt_dir / "train.json", report)
    return report


def fold_summary(per_fold: dict[int, dict]) -> dict:
    """Mean and (population) std across folds of the headline metrics, plus each fold's."""
    out: dict = {"folds": len(per_fold)}
    for key in CV_KEYS:
        values = [m[key] for m in per_fold.values() if m.get(key) is not None]
        if values:
            out[f"{key}_mean"] = float(np.mean(values))
            out[f"{key}_std"] = float(np.std(values))
    out["per_fold"] = {
        f"fold{k}": {key: m.get(key) for key in CV_KEYS if key in m} for k, m in per_fold.items()
    }
    return out


def load_av_model(ckpt_dir: Path) -> tuple[AVEmotionModel, dict]:
    """Rebuild a trained model from its checkpoint folder; returns (model in eval mode, payload)."""
    from affectpipe.models.checkpoint import load_checkpoint

    payload = load_checkpoint(ckpt_dir)
    # checkpoints written before these options existed used the GELU projector and MLP head
    config = {"projector": "mlp", "congruence": "mlp"} | payload["config"]
    model = AVEmotionModel(AVModelConfig(**config))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload


def predict_av(
    ckpt_dir: Path, features_dir: Path, processed_dir: Path, split: str = "test"
) -> pd.DataFrame:
    """One row per pair of `split` with true/predicted emotions, per-modality predictions,
    class probabilities (`prob_<emotion>`), congruence probability/label and kind.

    The pairs and features are those the checkpoint was trained against: same dataset, same
    test fold, and feature files whose provenance matches (else `StaleCacheError`).
    """
    model, payload = load_av_model(Path(ckpt_dir))
    prov = payload["provenance"]
    pair_cfg = PairConfig(**prov["pairs"]) if prov.get("pairs") else None
    data = load_av_data(
        Path(processed_dir),
        Path(features_dir) / prov["face_file"],
        Path(features_dir) / prov["voice_file"],
        model.cfg.classes,
        ProblemLog("skip"),
        prov["test_fold"],
        pair_cfg,
        prov.get("seed", 0),
        expect={k: prov[k] for k in ("face_features", "voice_features")},
    )
    if split not in data.splits:
        raise ValueError(f"unknown split '{split}'; valid: {sorted(data.splits)}")
    loader = DataLoader(data.splits[split], batch_size=256, shuffle=False)
    df = pair_frame(data.splits[split], collect_outputs(model, loader))
    return df.assign(dataset=prov["dataset"], model=prov["modality"])
