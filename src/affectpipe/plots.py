"""Figures (matplotlib) and plot data for `dvc plots`.

Every figure is readable on its own (title, axis labels with scales, legend) and byte-stable for
the same data: the Agg backend, a fixed DPI, no PNG metadata (matplotlib would stamp its version
and nothing else varies), and seeded layouts for UMAP.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

DPI = 100
TRUE_COLOUR, PRED_COLOUR = "#4d4d4d", "#d95f02"
KIND_COLOURS = {"overall": "#1b9e77", "easy": "#7570b3", "hard": "#e7298a"}
VA_LABEL = "{} (AFEW-VA -10..10 scaled to -1..1)"


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Write a PNG with no metadata, so the same data gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def plot_va_space(frames: pd.DataFrame, path: Path, title: str) -> None:
    """Predicted vs ground-truth points in the 2-D valence-arousal plane."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5), layout="constrained")
    ax.scatter(frames["valence_true"], frames["arousal_true"], s=10, c=TRUE_COLOUR,
               alpha=0.5, label="ground truth")  # fmt: skip
    ax.scatter(frames["valence_pred"], frames["arousal_pred"], s=10, c=PRED_COLOUR,
               alpha=0.5, label="predicted")  # fmt: skip
    ax.axhline(0, lw=0.5, c="k")
    ax.axvline(0, lw=0.5, c="k")
    ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), aspect="equal", title=title,
           xlabel=VA_LABEL.format("valence"), ylabel=VA_LABEL.format("arousal"))  # fmt: skip
    ax.legend(loc="lower right")
    save_figure(fig, path)


def plot_va_traces(frames: pd.DataFrame, path: Path, title: str, max_clips: int = 4) -> None:
    """Per-clip valence and arousal over time, predicted vs true, for the first few clips."""
    clips = sorted(frames["clip"].unique())[:max_clips]
    fig, axes = plt.subplots(len(clips), 2, figsize=(10, 2.2 * len(clips) + 0.6),
                             sharex="row", squeeze=False, layout="constrained")  # fmt: skip
    for row, clip in zip(axes, clips, strict=True):
        part = frames[frames["clip"] == clip].sort_values("frame")
        for ax, dim in zip(row, ("valence", "arousal"), strict=True):
            ax.plot(part["frame"], part[f"{dim}_true"], c=TRUE_COLOUR, label="ground truth")
            ax.plot(part["frame"], part[f"{dim}_pred"], c=PRED_COLOUR, label="predicted")
            ax.set(ylim=(-1.05, 1.05), title=f"clip {clip}: {dim}", xlabel="frame",
                   ylabel=f"{dim} (-1..1)")  # fmt: skip
    axes[0, 0].legend(loc="upper right")
    fig.suptitle(title)
    save_figure(fig, path)


# The fewest points each projection can place (PCA: two components; UMAP: a neighbour graph).
MIN_POINTS = {"pca": 2, "umap": 3}


def project_2d(embeddings: np.ndarray, method: str, seed: int) -> np.ndarray:
    """PCA or UMAP of (n, d) embeddings to (n, 2), seeded."""
    if method not in MIN_POINTS:
        raise ValueError(f"unknown projection '{method}'; valid: {sorted(MIN_POINTS)}")
    n = len(embeddings)
    if n < MIN_POINTS[method]:
        raise ValueError(f"{method.upper()} needs at least {MIN_POINTS[method]} points, got {n}")
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(embeddings)
    if method == "umap":
        import umap  # heavy import (numba): only when asked for

        neighbours = max(2, min(15, n - 1))
        # spectral initialisation needs more points than its 3 eigenvectors (few clips)
        init = "spectral" if n >= 5 else "random"
        reducer = umap.UMAP(n_neighbors=neighbours, random_state=seed, n_jobs=1, init=init)
        return reducer.fit_transform(embeddings)
    raise AssertionError(method)  # every name in MIN_POINTS is handled above


def plot_embeddings(
    embeddings: np.ndarray,
    colour_by: Mapping[str, np.ndarray],
    path: Path,
    title: str,
    method: str = "pca",
    seed: int = 0,
    categories: Mapping[str, list[str]] | None = None,
    point_size: float = 8,
) -> None:
    """One panel per colouring (e.g. valence, arousal, emotion) of a 2-D projection; with
    fewer points than the projection needs (a test fold of one clip), a figure saying so, so
    the figure set stays the same and the gap is visible where the figure is looked for."""
    if method in MIN_POINTS and len(embeddings) < MIN_POINTS[method]:
        fig, ax = plt.subplots(figsize=(4.6, 2.0), layout="constrained")
        ax.axis("off")
        ax.text(0.5, 0.5, f"{len(embeddings)} point(s): {method.upper()} needs at least "
                f"{MIN_POINTS[method]}", ha="center", va="center")  # fmt: skip
        fig.suptitle(title)
        save_figure(fig, path)
        return
    xy = project_2d(embeddings, method, seed)
    categories = categories or {}
    fig, axes = plt.subplots(1, len(colour_by), figsize=(4.6 * len(colour_by), 4.4),
                             squeeze=False, layout="constrained")  # fmt: skip
    for ax, (name, values) in zip(axes[0], colour_by.items(), strict=True):
        if name in categories:
            labels = categories[name]
            cmap = plt.get_cmap("tab10")
            for idx in sorted(set(values.tolist())):
                mask = values == idx
                ax.scatter(xy[mask, 0], xy[mask, 1], s=point_size, color=cmap(idx % 10),
                           label=labels[idx])  # fmt: skip
            ax.legend(fontsize=7, markerscale=1.5)
        else:
            points = ax.scatter(xy[:, 0], xy[:, 1], s=point_size, c=values, cmap="coolwarm",
                                vmin=-1, vmax=1)  # fmt: skip
            fig.colorbar(points, ax=ax, label=f"{name} (-1..1)")
        ax.set(
            title=f"coloured by {name}", xlabel=f"{method.upper()} 1", ylabel=f"{method.upper()} 2"
        )
    fig.suptitle(title)
    save_figure(fig, path)


def plot_congruence_roc(pairs: pd.DataFrame, path: Path, title: str) -> None:
    """ROC of the congruence score: all pairs, and congruent vs easy / vs hard incongruent."""
    fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    congruent = pairs[pairs["kind"] == "congruent"]
    subsets = {"overall": pairs} | {
        k: pd.concat([congruent, pairs[pairs["kind"] == k]]) for k in ("easy", "hard")
    }
    for name, part in subsets.items():
        if part["congruent"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(part["congruent"], part["congruence_prob"])
        ax.plot(fpr, tpr, c=KIND_COLOURS[name], label=f"{name} ({len(part)} pairs)")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal", title=title,
           xlabel="false positive rate (incongruent called congruent)",
           ylabel="true positive rate (congruent called congruent)")  # fmt: skip
    ax.legend(loc="lower right")
    save_figure(fig, path)


def plot_reliability(pairs: pd.DataFrame, path: Path, title: str) -> None:
    """Reliability diagrams of a fusion model's pair predictions (`pair_frame` with raw and
    calibrated probabilities): the congruence probability against the observed share of
    congruent pairs, and the fused emotion's top-label confidence against its accuracy
    (congruent pairs), each before and after calibration, over `metrics.ECE_BINS` bins."""
    from affectpipe.data.labels import EMOTIONS
    from affectpipe.metrics import ECE_BINS, ece, reliability_bins, top_label

    congruent = pairs[pairs["congruent"] == 1]
    emotion = {
        name: top_label(congruent["emotion_true"], congruent[[f"{c}{e}" for e in EMOTIONS]])
        for name, c in (("raw", "raw_prob_"), ("calibrated", "prob_"))
    }
    panels = {
        "face/voice congruence": {
            "raw": (pairs["congruent"], pairs["congruence_prob_raw"]),
            "calibrated": (pairs["congruent"], pairs["congruence_prob"]),
        },
        "fused emotion (top label, congruent pairs)": emotion,
    }
    axes_labels = {
        "face/voice congruence": ("predicted P(congruent)", "observed share congruent"),
        "fused emotion (top label, congruent pairs)": ("confidence", "accuracy"),
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), layout="constrained")
    for ax, (name, curves) in zip(axes, panels.items(), strict=True):
        for (label, (outcome, prob)), colour in zip(curves.items(), (TRUE_COLOUR, PRED_COLOUR),
                                                    strict=True):  # fmt: skip
            bins = reliability_bins(outcome, prob)
            ax.plot(bins["mean_prob"], bins["frequency"], marker="o", c=colour,
                    label=f"{label} (ECE {ece(outcome, prob):.3f})")  # fmt: skip
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label="perfectly calibrated")
        xlabel, ylabel = axes_labels[name]
        ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal", xlabel=xlabel, ylabel=ylabel,
               title=f"{name}, {len(next(iter(curves.values()))[0])} pairs")  # fmt: skip
        ax.legend(loc="best")
    fig.suptitle(f"{title} ({ECE_BINS} equal-width bins; points: non-empty bins)")
    save_figure(fig, path)


def confusion_plot_data(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Rows `actual, predicted` (class names) for DVC's `confusion` template."""
    return pd.DataFrame(
        {"actual": [names[i] for i in y_true], "predicted": [names[i] for i in y_pred]}
    )
