"""Segments and their overlaps: the building blocks of every region metric here.

A *segmentation* is an integer label map; a *segment* is the set of pixels with one label.
All functions are vectorised with ``np.bincount`` (no loop over pixels or segments).
The public functions check their inputs with :func:`label_map` (a dtype and shape check, no pass
over the pixels): a float map would otherwise score every NaN as one segment, unnoticed.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label as _cc_label


def label_map(array, name: str, ndim: tuple[int, ...] = (2,)) -> np.ndarray:
    """``array`` as an ndarray if it is an integer (or bool) map with ``ndim`` dimensions, else a
    ``ValueError`` naming ``name``. Negative labels pass (void pixels). Any float is refused, even an
    integer-valued one: NaN and 0.5 would each be scored as a label of their own."""
    a = np.asarray(array)
    _check_ndim(a, name, ndim, "integer label map")
    if a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name}: {a.dtype} values{_float_detail(a)}; "
                         f"pass an integer label map (e.g. {name}.astype(np.int64))")
    return a


def binary_mask(array, name: str) -> np.ndarray:
    """``array`` as an ndarray if it is a 2-D bool or integer mask (nonzero = foreground), else a
    ``ValueError`` naming ``name``: a float mask is refused because NaN would count as foreground."""
    a = np.asarray(array)
    _check_ndim(a, name, (2,), "binary mask")
    if a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name}: {a.dtype} values{_float_detail(a)}; "
                         f"pass a bool or integer mask (e.g. {name} > 0.5, or {name}.astype(bool))")
    return a


def _check_ndim(a: np.ndarray, name: str, ndim: tuple[int, ...], what: str) -> None:
    if a.ndim in ndim:
        return
    wanted = f"a 2-D {what} (H, W)" + (" or a 1-D array of its pixels" if 1 in ndim else "")
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        raise ValueError(f"{name}: a {'x'.join(map(str, a.shape))} array looks like a colour image; pass {wanted}")
    raise ValueError(f"{name}: a {a.ndim}-D array of shape {a.shape}; pass {wanted}")


def _float_detail(a: np.ndarray) -> str:
    """What is wrong beyond the dtype (one pass over the pixels, only on the way to an error)."""
    if not np.issubdtype(a.dtype, np.floating):
        return ""
    if np.isnan(a).any():
        return " (NaN found; mark void pixels with a negative integer label instead)"
    if not np.isfinite(a).all() or (a != np.round(a)).any():
        return " (non-integer values found)"
    return " (integer-valued)"


def relabel_connected(labels: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Split every label into its connected components and number them ``0..n-1``.

    ``connectivity=1`` is 4-connectivity (the choice of Kim et al.'s evaluation script and of
    this study for Kanezaki 2018), ``2`` is 8-connectivity. Every pixel gets a label (no
    background); components are numbered in raster order of their first pixel.
    """
    labels = label_map(labels, "labels")
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
    map is renumbered ``0..n-1`` with :func:`compact`. 1-D maps are accepted as well: callers pass
    the pixels that count, flattened (e.g. ``evaluate_image`` once void pixels are dropped).
    """
    a, b = label_map(a, "a", ndim=(1, 2)), label_map(b, "b", ndim=(1, 2))
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
    labels = label_map(labels, "labels")
    if labels.shape == tuple(shape):
        return labels
    h, w = labels.shape
    rows = np.minimum((np.arange(shape[0]) + 0.5) * h / shape[0], h - 1).astype(np.int64)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * w / shape[1], w - 1).astype(np.int64)
    return labels[rows[:, None], cols[None, :]]
