"""Figures: label maps in colour, image/segmentation grids, per-image F, PR curves."""

from __future__ import annotations

from typing import Mapping, Sequence

import sys

import matplotlib

if "ipykernel" not in sys.modules:  # off-screen outside a notebook; a notebook keeps its inline figures
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .metrics import relabel_connected  # noqa: E402
from .overlays import colourise  # noqa: E402


def segmentation_grid(rows: Sequence[tuple[str, np.ndarray, Sequence[tuple[str, np.ndarray]]]], width: float = 2.4) -> plt.Figure:
    """``rows`` of (title, image, [(column title, label map), ...]) -> image | segmentations grid."""
    n_cols = 1 + max(len(r[2]) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(width * n_cols, width * 0.75 * len(rows)), squeeze=False)
    for i, (title, image, maps) in enumerate(rows):
        axes[i, 0].imshow(image)
        axes[i, 0].set_title(title, fontsize=8)
        for j, (name, lab) in enumerate(maps, start=1):
            shown = lab if lab.shape == image.shape[:2] else _nearest(lab, image.shape[:2])
            axes[i, j].imshow(colourise(shown, image))
            axes[i, j].set_title(f"{name}\n{int(relabel_connected(shown).max()) + 1} segments", fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def _nearest(labels: np.ndarray, shape) -> np.ndarray:
    from .metrics import upsample_labels

    return upsample_labels(labels, shape)


def per_image_f(df: pd.DataFrame, value: str = "f", hue: str = "method") -> plt.Figure:
    """Fig. 3 of Kanezaki 2018: per-image F-measure, images sorted by the first method's score."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    first = df[hue].iloc[0]
    order = df[df[hue] == first].groupby("image")[value].mean().sort_values().index
    pos = {k: i for i, k in enumerate(order)}
    d = df.assign(rank=df["image"].map(pos))
    sns.lineplot(data=d, x="rank", y=value, hue=hue, marker="o", markersize=3, ax=ax, errorbar=("sd", 1))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel(f"image (sorted by {first})")
    ax.set_ylabel("F-measure (IoU > 0.5)")
    ax.set_ylim(0, None)
    fig.tight_layout()
    return fig


def pr_curves(curves: Mapping[str, Mapping[float, tuple[np.ndarray, np.ndarray]]]) -> plt.Figure:
    """Fig. 4 of Kanezaki 2018: ``{method: {threshold: (recall, precision)}}`` one panel per threshold."""
    thresholds = sorted({t for c in curves.values() for t in c})
    fig, axes = plt.subplots(1, len(thresholds), figsize=(4 * len(thresholds), 3.3), squeeze=False)
    for ax, t in zip(axes[0], thresholds):
        for name, c in curves.items():
            if t in c:
                recall, precision = c[t]
                ax.plot(recall, precision, label=name)
        ax.set_title(f"IoU threshold {t}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, None)
        ax.set_ylim(0, 1)
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def label_trajectories(hist: pd.DataFrame) -> plt.Figure:
    """Distinct labels q' per iteration (columns form, iteration, labels): median and IQR band."""
    fig, ax = plt.subplots(figsize=(6, 3))
    sns.lineplot(data=hist, x="iteration", y="labels", hue="form", estimator="median", errorbar=("pi", 50), ax=ax)
    ax.set_yscale("log")
    ax.set_ylabel("distinct labels q' (median, IQR)")
    fig.tight_layout()
    return fig


def image_rows(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]], width: float = 1.5,
               classes: int = 3) -> plt.Figure:
    """``rows`` of (row title, [(caption, image), ...]): RGB images (H, W, 3) as they are, class
    maps (H, W) in grey levels when ``classes`` <= 3 (0 black .. 2 white; JigsawGAN: pet,
    background, border), else in ``tab20`` colours; labels >= ``classes`` (ignored pixels) white."""
    cmap = plt.get_cmap("gray" if classes <= 3 else "tab20").copy()
    cmap.set_bad("white")
    n_cols = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(width * n_cols, width * 1.1 * len(rows)), squeeze=False)
    for i, (title, panels) in enumerate(rows):
        for j, ax in enumerate(axes[i]):
            ax.axis("off")
            if j >= len(panels):
                continue
            name, image = panels[j]
            if image.ndim == 2:
                shown = np.ma.masked_greater_equal(image, classes)
                ax.imshow(shown, cmap=cmap, vmin=0, vmax=max(2, classes - 1), interpolation="nearest")
            else:
                ax.imshow(image)
            ax.set_title(name, fontsize=7)
        axes[i, 0].text(-0.08, 0.5, title, transform=axes[i, 0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=7)
    fig.tight_layout()
    return fig


def training_curves(log: pd.DataFrame, columns: Sequence[str], hue: str = "model", x: str = "epoch") -> plt.Figure:
    """One panel per logged quantity of ``columns`` against ``x`` (``log``: one row per model,
    seed and epoch or checkpoint): the mean over seeds with a band of one standard deviation."""
    columns = [c for c in columns if c in log.columns]
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns):
        sns.lineplot(data=log, x=x, y=column, hue=hue, errorbar=("sd", 1), ax=ax, legend=ax is axes[0, -1])
        ax.set_title(column, fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if axes[0, -1].get_legend() is not None:
        sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1, 1), fontsize=7)
    fig.tight_layout()
    return fig


def lambda_heatmaps(table: pd.DataFrame, value: str, title: str) -> plt.Figure:
    """One heatmap of ``value`` per generator input over (lambda1 rows, lambda2 columns)."""
    inputs = list(table.generator_input.unique())
    limit = float(np.nanmax(np.abs(table[value]))) or 1.0  # one colour scale for every panel
    fig, axes = plt.subplots(1, len(inputs), figsize=(3.8 * len(inputs), 3.2), squeeze=False)
    for ax, inp in zip(axes[0], inputs):
        grid = table[table.generator_input == inp].pivot(index="lambda_content", columns="lambda_adversarial",
                                                         values=value)
        sns.heatmap(grid, annot=True, fmt=".2f", cmap="RdBu", vmin=-limit, vmax=limit, ax=ax, cbar=False,
                    annot_kws={"fontsize": 7})
        ax.set_title(f"G reads {inp}", fontsize=9)
        ax.set_xlabel("lambda2 (adversarial)")
        ax.set_ylabel("lambda1 (content)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
