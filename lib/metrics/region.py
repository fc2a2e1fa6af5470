"""The BSDS500 region benchmarks (Arbelaez et al., TPAMI 2011, Sec. 3.2): Segmentation Covering,
Probabilistic Rand Index and Variation of Information, computed as the benchmark's own code
computes them (``evaluation_reg_image.m`` and John Wright's ``compare_segmentations.m``):

- on the label map as given (no connected-component relabelling, unlike the Kim mIoU and the
  Kanezaki AP: a clustering method's label spread over the image is one region here, as it is
  for the benchmark's own code; for methods that output connected regions, such as GS, the two
  views agree);
- Covering of the ground truth by the prediction: for each ground-truth region R, |R| times its
  best IoU with a predicted region; summed over the regions of every annotator and divided by
  the pixels of every annotator (pooled over annotators, and over images for a dataset);
- PRI: the Rand index with each annotator, averaged over annotators, then over images;
- VOI = H(S) + H(G) - 2 I(S, G) in bits (log2), averaged the same way (lower is better).

"Optimal dataset scale" (ODS) applies to methods with a parameter: the notebooks report each
method's configuration with the best dataset-level score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .segments import label_map, overlap


@dataclass(frozen=True)
class ImageRegion:
    """Per-annotator numbers of one image: covering numerator and pixels, Rand index, VOI."""

    covered: np.ndarray  # sum over the annotator's regions of |R| * best IoU
    pixels: np.ndarray  # pixels of the annotator's map that count
    rand: np.ndarray
    voi: np.ndarray


def _entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def region_scores(pred: np.ndarray, segmentations: Sequence[np.ndarray]) -> ImageRegion:
    """Covering, Rand index and VOI of ``pred`` against each annotator (same-shaped arrays). 1-D maps
    are accepted too: ``evaluate_image`` passes the pixels that count, flattened, once void is dropped."""
    pred = label_map(pred, "pred", ndim=(1, 2))
    segmentations = [label_map(gt, f"segmentations[{k}]", ndim=(1, 2)) for k, gt in enumerate(segmentations)]
    covered, pixels, rand, voi = [], [], [], []
    for gt in segmentations:
        n, size_p, size_g = overlap(pred, gt)
        n = n.astype(np.float64)
        total = n.sum()
        iou = n / (size_p[:, None] + size_g[None, :] - n)
        covered.append(float((iou.max(axis=0) * size_g).sum()))
        pixels.append(float(total))
        pairs = total * (total - 1) / 2
        disagree = ((size_p.astype(np.float64) ** 2).sum() + (size_g.astype(np.float64) ** 2).sum()) / 2 - (n**2).sum()
        rand.append(1.0 - disagree / pairs if pairs else 1.0)
        joint = n / total
        nz = joint > 0
        marg_p, marg_g = joint.sum(1), joint.sum(0)
        mutual = float((joint[nz] * np.log2(joint[nz] / np.outer(marg_p, marg_g)[nz])).sum())
        voi.append(_entropy_bits(marg_p) + _entropy_bits(marg_g) - 2 * mutual)
    return ImageRegion(*(np.array(v) for v in (covered, pixels, rand, voi)))


def pooled_region(images: Iterable[ImageRegion]) -> dict[str, float]:
    """Dataset-level ``covering`` (pixel-pooled), ``pri`` and ``voi`` (means over images)."""
    images = list(images)
    if not images:
        raise ValueError("no image to average over")
    return {
        "covering": float(sum(im.covered.sum() for im in images) / sum(im.pixels.sum() for im in images)),
        "pri": float(np.mean([im.rand.mean() for im in images])),
        "voi": float(np.mean([im.voi.mean() for im in images])),
    }
