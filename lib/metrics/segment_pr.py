"""Segment-level precision, recall, F-measure and PR curves of Kanezaki (ICASSP 2018, Sec. 3).

The paper: "We calculated the IoU of each estimated segment and ground truth segments and
regarded the IoU as correct if the maximum IoU is larger than 0.5"; Fig. 3 gives the per-image
F-measure, Fig. 4 precision–recall curves at IoU 0.5 and 0.7 with "segments arranged in order
of decreasing size", and the text the best average precision per method. The paper leaves the
rest open; this study's choices:

- Segments are the 4-connected components of each predicted label (as for the Kim mIoU).
- Annotators: a predicted segment is *correct* when its best IoU over the segments of *all*
  annotators exceeds the threshold (it matches a region that some human drew). *Recall* is the
  fraction of ground-truth segments, pooled over all annotators, whose best IoU over the
  predicted segments exceeds the threshold.
- Matching is one-to-one without any assignment step: at a threshold >= 0.5, two disjoint
  segments cannot both overlap one segment by more than half its union, so each ground-truth
  segment is matched by at most one predicted segment and vice versa (per annotator). Hence
  thresholds below 0.5 are refused.
- PR curve: all predicted segments of all images are ranked by decreasing area (as a fraction of
  their image, so resized images rank alike; equal areas keep the order of the images and, within
  an image, of the segments' first pixels in raster order); precision at rank r is the share of
  correct segments among the first r, recall the share of all ground-truth segments matched by
  them.
- AP = sum over ranks of (recall_r - recall_{r-1}) * precision_r (no interpolation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .segments import iou_matrix, label_map


@dataclass(frozen=True)
class SegmentMatches:
    """Threshold-free matching data of one image (the threshold is applied later).

    Attributes:
        area: (P,) area of each predicted segment, as a fraction of the image.
        pred_best_iou: (P,) best IoU of each predicted segment over all annotators' segments.
        gt_best_iou: (G,) best IoU of each ground-truth segment (all annotators, pooled).
        gt_best_pred: (G,) index of the predicted segment achieving ``gt_best_iou``.
    """

    area: np.ndarray
    pred_best_iou: np.ndarray
    gt_best_iou: np.ndarray
    gt_best_pred: np.ndarray

    @classmethod
    def from_ious(cls, ious: Sequence[np.ndarray], area: np.ndarray) -> "SegmentMatches":
        """From one ``(predicted, ground-truth)`` IoU matrix per annotator and the segment areas."""
        return cls(
            area=area,
            pred_best_iou=np.max([iou.max(axis=1) for iou in ious], axis=0),
            gt_best_iou=np.concatenate([iou.max(axis=0) for iou in ious]),
            gt_best_pred=np.concatenate([iou.argmax(axis=0) for iou in ious]),
        )

    def correct(self, threshold: float) -> np.ndarray:
        return self.pred_best_iou > threshold

    def hits(self, threshold: float) -> np.ndarray:
        """(P,) number of ground-truth segments matched by each predicted segment."""
        _check_threshold(threshold)
        matched = self.gt_best_pred[self.gt_best_iou > threshold]
        return np.bincount(matched, minlength=len(self.area))


def _check_threshold(threshold: float) -> None:
    if threshold < 0.5:
        raise ValueError(f"IoU threshold {threshold} < 0.5: matches would no longer be one-to-one")


def match_segments(segments: np.ndarray, segmentations: Sequence[np.ndarray]) -> SegmentMatches:
    """Match ``segments`` (numbered ``0..P-1``, e.g. from ``relabel_connected``) against every annotator."""
    if not segmentations:
        raise ValueError("no ground-truth segmentation to match against")
    segments = label_map(segments, "segments")
    segmentations = [label_map(gt, f"segmentations[{k}]") for k, gt in enumerate(segmentations)]
    area = np.bincount(segments.ravel()) / segments.size
    return SegmentMatches.from_ious([iou_matrix(segments, gt) for gt in segmentations], area)


def precision_recall_f(m: SegmentMatches, threshold: float = 0.5) -> tuple[float, float, float]:
    """Per-image precision, recall and F-measure (Fig. 3 of the paper)."""
    _check_threshold(threshold)
    p = float(m.correct(threshold).mean())
    r = float((m.gt_best_iou > threshold).mean())
    f = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    return p, r, f


@dataclass(frozen=True)
class PRCurve:
    precision: np.ndarray
    recall: np.ndarray
    ap: float


def pr_curve(images: Iterable[SegmentMatches], threshold: float = 0.5) -> PRCurve:
    """Dataset-level PR curve with segments ranked by decreasing size, and its AP (Fig. 4)."""
    images = list(images)
    n_gt = sum(len(m.gt_best_iou) for m in images)
    if not images or n_gt == 0:
        raise ValueError("a PR curve needs at least one image with ground-truth segments")
    area = np.concatenate([m.area for m in images])
    correct = np.concatenate([m.correct(threshold) for m in images])
    hits = np.concatenate([m.hits(threshold) for m in images])
    order = np.argsort(-area, kind="stable")
    tp = np.cumsum(correct[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = np.cumsum(hits[order]) / n_gt
    ap = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    return PRCurve(precision, recall, ap)
