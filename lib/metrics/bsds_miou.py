"""The BSDS500 mIoU of Kim, Kanezaki & Tanaka (TIP 2020), copied by DynamicSeg (Table I).

Protocol (Kim et al.'s evaluation script, shared in the tip repository's issue #2):

1. Relabel the prediction into 4-connected components.
2. For every ground-truth segment — every label of every annotator's map, none skipped — take
   its best IoU over the predicted segments. Many ground-truth segments may pick the same
   predicted segment, and predicted segments that nobody picks are not penalised.
3. mIoU is the plain mean of those scores pooled over all (image, annotator, segment) triples.

Subsets of annotators: *All* pools every annotator; *Fine* keeps, per image, the annotator with
the most labels; *Coarse* the one with the fewest (ties: the first in the file); *Mean* is the
average of All, Fine and Coarse. A blank prediction (one segment) scores All 0.0458, Fine 0.0249,
Coarse 0.1001 on the 200 BSDS500 test images — the published sanity check.

Because extra fragments cost nothing, report the number of predicted segments beside mIoU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .segments import iou_matrix, label_map, relabel_connected


@dataclass(frozen=True)
class ImageMIoU:
    """Per-image scores: ``scores[k]`` holds the best IoU of each segment of annotator ``k``."""

    scores: tuple[np.ndarray, ...]
    n_segments: int  # predicted 4-connected segments

    @classmethod
    def from_ious(cls, ious: Sequence[np.ndarray]) -> "ImageMIoU":
        """From one ``(predicted, ground-truth)`` IoU matrix per annotator."""
        return cls(scores=tuple(iou.max(axis=0) for iou in ious), n_segments=int(ious[0].shape[0]))

    @property
    def fine(self) -> int:
        """Index of the annotator with the most labels (first on ties)."""
        return int(np.argmax([len(s) for s in self.scores]))

    @property
    def coarse(self) -> int:
        """Index of the annotator with the fewest labels (first on ties)."""
        return int(np.argmin([len(s) for s in self.scores]))


def image_miou(pred: np.ndarray, segmentations: Sequence[np.ndarray], connectivity: int = 1) -> ImageMIoU:
    """Score one prediction against every annotator (step 1 and 2 of the protocol)."""
    if not segmentations:
        raise ValueError("the Kim mIoU needs at least one ground-truth segmentation")
    pred = label_map(pred, "pred")
    segmentations = [label_map(gt, f"segmentations[{k}]") for k, gt in enumerate(segmentations)]
    segments = relabel_connected(pred, connectivity)  # step 1: 4-connected segments
    ious = [iou_matrix(segments, gt) for gt in segmentations]  # (predicted, ground truth) per annotator
    best = tuple(iou.max(axis=0) for iou in ious)  # step 2: best IoU of each ground-truth segment
    return ImageMIoU(scores=best, n_segments=len(ious[0]))


def pooled_miou(images: Iterable[ImageMIoU]) -> dict[str, float]:
    """Step 3: ``{"all", "fine", "coarse", "mean"}`` pooled over images, annotators and segments."""
    images = list(images)
    if not images:
        raise ValueError("no image to average over")
    all_ = np.concatenate([s for im in images for s in im.scores])
    fine = np.concatenate([im.scores[im.fine] for im in images])
    coarse = np.concatenate([im.scores[im.coarse] for im in images])
    out = {"all": float(all_.mean()), "fine": float(fine.mean()), "coarse": float(coarse.mean())}
    out["mean"] = (out["all"] + out["fine"] + out["coarse"]) / 3
    return out
