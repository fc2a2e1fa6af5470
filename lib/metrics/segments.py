"""Segments and their overlaps: the building blocks of every region metric here.

A *segmentation* is an integer label map; a *segment* is the set of pixels with one label.
All functions are vectorised with ``np.bincount`` (no loop over pixels or segments).
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label as _cc_label


def relabel_connected(labels: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Split every label into its connected components and number them ``0..n-1``.

    ``connectivity=1`` is 4-connectivity (the choice of Kim et al.'s evaluation script and of
    this study for Kanezaki 2018), ``2`` is 8-connectivity. Every pixel gets a label (no
    background); components are numbered in raster order of their first pixel.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected a 2-D label map, got shape {labels.shape}")
    # skimage treats 0 as background: renumber 1..n first (also safe for huge or unsigned labels)
    shifted = compact(labels)[0] + 1
    return _cc_label(shifted, connectivity=connectivity, background=0).astype(np.int64) - 1


def compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber labels to ``0..n-1`` (in increasing order of the original labels); return n."""
    uniq, inverse = np.unique(np.asarray(labels), return_inverse=True)
    return inverse.reshape(np.shape(labels)), len(uniq)


def overlap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contingency table of two segmentations of the same image.

    Returns ``(inter, size_a, size_b)`` with ``inter[i, j] = |A_i ∩ B_j|`` in pixels, after each
    map is renumbered ``0..n-1`` with :func:`compact`.
    """
    if np.shape(a) != np.shape(b):
        raise ValueError(f"segmentations differ in shape: {np.shape(a)} vs {np.shape(b)}")
    a, na = compact(a)
    b, nb = compact(b)
    inter = np.bincount((a * nb + b).ravel(), minlength=na * nb).reshape(na, nb)
    return inter, inter.sum(1), inter.sum(0)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``iou[i, j] = |A_i ∩ B_j| / |A_i ∪ B_j|`` for every pair of segments of ``a`` and ``b``."""
    inter, size_a, size_b = overlap(a, b)
    union = size_a[:, None] + size_b[None, :] - inter
    return inter / union


def count_segments(labels: np.ndarray, connectivity: int = 1) -> int:
    """Number of connected segments (what the Kim protocol actually scores)."""
    return int(relabel_connected(labels, connectivity).max()) + 1


def upsample_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to ``shape`` (for predictions made on a smaller image)."""
    labels = np.asarray(labels)
    if labels.shape == tuple(shape):
        return labels
    h, w = labels.shape
    rows = np.minimum((np.arange(shape[0]) + 0.5) * h / shape[0], h - 1).astype(np.int64)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * w / shape[1], w - 1).astype(np.int64)
    return labels[rows[:, None], cols[None, :]]
