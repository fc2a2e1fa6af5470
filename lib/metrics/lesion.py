"""Binary-mask metrics of S3-Net (Karimijafarbigloo et al., ICCV-W 2023) and how a clustering
becomes a lesion mask.

Metrics (``mask_scores``), as the authors' ``utils.py`` computes the first three:

- DSC = 2|A ∩ B| / (|A| + |B|);
- HM = 1 - IoU, the *Hammoude* distance (the paper's "HM"; not the Hausdorff distance);
- XOR = |A xor B| / |B| with B the ground truth;
- and, because readers of "HM" will expect it, the symmetric Hausdorff distance between the two
  masks' boundaries in pixels: its maximum and 95th percentile (the MedPy convention: the 95th
  percentile of both directed boundary-to-boundary distances pooled). Empty masks give nan.

Protocols turning cluster labels into one foreground mask:

- ``authors`` (their ``utils.py``, ``create_mask``): the cluster with the largest overlap with
  the ground truth is the foreground, which is then multiplied by the dilated ground truth; the
  code dilates with ``cv2.dilate(GT, 5x5 ones, iterations=2)``, i.e. a 9 x 9 square
  (``dilation=4``, the half-width of the square); scored at the network's resolution, the ground
  truth resized there bilinearly and any non-zero value counted as foreground. Both steps look at
  the answer. (Their ``create_mask`` counts overlaps on ``pred * GT`` restricted to non-zero
  values, so a cluster numbered 0 could never be picked; how ``pred`` is numbered in their
  evaluation is not in the repository, so this study takes the largest overlap over all clusters.)
- ``gt-free`` (this study's): without the ground truth. Among the clusters whose *interior* — the
  pixels of their 4-connected components that do not touch the image border — covers at least
  ``min_interior`` of the image, the foreground is the interior of the one whose pixels are
  darkest in the input image. It uses one prior shared by both datasets: the target (a lesion on
  skin, lungs inside the body) is darker than what surrounds it and does not touch the border.
  Scored at the original resolution (the labels brought there by nearest neighbour). A lesion
  that touches the image border is dropped (wholly or in part) by this rule: ``gt_at_border``
  counts such images (12 of the 60 staged PH2 images, 8 of their 12 melanomas).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import label as cc_label
from skimage.transform import resize

from .segments import binary_mask, compact, label_map, upsample_labels

NAN = float("nan")


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (erosion by a cross, as MedPy does)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hausdorff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(maximum, 95th percentile) symmetric boundary distance in pixels; nan if a mask is empty."""
    a, b = binary_mask(a, "a").astype(bool), binary_mask(b, "b").astype(bool)
    if not a.any() or not b.any():
        return NAN, NAN
    ba, bb = _boundary(a), _boundary(b)
    to_b = ndimage.distance_transform_edt(~bb)[ba]  # from a's boundary to b's
    to_a = ndimage.distance_transform_edt(~ba)[bb]
    both = np.concatenate([to_b, to_a])
    return float(both.max()), float(np.percentile(both, 95))


def mask_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """DSC, HM (1 - IoU), XOR and Hausdorff (max, 95%) of two binary masks of one shape."""
    pred, gt = binary_mask(pred, "pred"), binary_mask(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {gt.shape}")
    a, b = pred.astype(bool), gt.astype(bool)
    inter, union = float((a & b).sum()), float((a | b).sum())
    total = float(a.sum() + b.sum())
    hd, hd95 = hausdorff(a, b)
    return {
        "dsc": 2 * inter / total if total else 1.0,
        "hm": 1 - inter / union if union else 0.0,
        "xor": float((a ^ b).sum()) / float(b.sum()) if b.any() else NAN,
        "hausdorff": hd,
        "hd95": hd95,
    }


def authors_foreground(labels: np.ndarray, gt: np.ndarray, dilation: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The authors' protocol at the labels' resolution: returns (foreground, resized ground truth).
    The crop is the ground truth dilated by a square of side ``2 * dilation + 1`` (the code: 9)."""
    labels, gt = label_map(labels, "labels"), binary_mask(gt, "gt")
    g = resize(gt.astype(np.float64), labels.shape, order=1, anti_aliasing=False) > 0
    lab, n = compact(labels)
    overlap = np.bincount(lab[g], minlength=n)
    fg = lab == int(np.argmax(overlap))
    fg &= ndimage.binary_dilation(g, structure=np.ones((2 * dilation + 1,) * 2, bool)) if dilation > 0 else g
    return fg, g


def interior(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` in 4-connected components that do not touch the image border."""
    comps = cc_label(mask, connectivity=1)
    border = np.unique(np.concatenate([comps[0], comps[-1], comps[:, 0], comps[:, -1]]))
    return mask & ~np.isin(comps, border[border > 0])


def gt_free_foreground(labels: np.ndarray, image: np.ndarray, min_interior: float = 0.01) -> np.ndarray:
    """The study's ground-truth-free rule (module docstring), at the labels' resolution. ``image``
    (grey or RGB) is not a label map, so only ``labels`` is checked."""
    lab, n = compact(label_map(labels, "labels"))
    grey = image.astype(np.float64).mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
    if grey.shape != lab.shape:
        grey = resize(grey, lab.shape, order=1, anti_aliasing=True)
    best, best_level = None, np.inf
    for k in range(n):  # one pass per cluster: q' is small after training (tens at most)
        inner = interior(lab == k)
        if inner.mean() >= min_interior:
            level = grey[lab == k].mean()
            if level < best_level:
                best, best_level = inner, level
    return best if best is not None else np.zeros(lab.shape, bool)


def protocol_scores(labels: np.ndarray, image: np.ndarray, gt: np.ndarray, dilation: int = 4,
                    min_interior: float = 0.01) -> dict[str, float]:
    """Both protocols' metrics, keys ``authors_<metric>`` and ``gtfree_<metric>``."""
    labels, gt = label_map(labels, "labels"), binary_mask(gt, "gt")
    fg, g = authors_foreground(labels, gt, dilation)
    out = {f"authors_{k}": v for k, v in mask_scores(fg, g).items()}
    free = gt_free_foreground(labels, image, min_interior)
    free = upsample_labels(free.astype(np.uint8), gt.shape).astype(bool)
    out.update({f"gtfree_{k}": v for k, v in mask_scores(free, gt.astype(bool)).items()})
    g = gt.astype(bool)
    out["gt_at_border"] = float(g[0].any() or g[-1].any() or g[:, 0].any() or g[:, -1].any())
    return out
