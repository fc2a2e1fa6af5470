"""Segmentation metrics.

- ``segments``: connected components, overlaps, IoU matrices (shared machinery).
- ``bsds_miou``: the Kim et al. (TIP 2020) BSDS500 mIoU protocol, All / Fine / Coarse / Mean.
- ``segment_pr``: Kanezaki (ICASSP 2018) segment precision / recall / F, PR curves and AP.
"""

from .bsds_miou import ImageMIoU, image_miou, pooled_miou
from .segment_pr import PRCurve, SegmentMatches, match_segments, pr_curve, precision_recall_f
from .segments import count_segments, iou_matrix, overlap, relabel_connected, upsample_labels

__all__ = [
    "ImageMIoU",
    "PRCurve",
    "SegmentMatches",
    "count_segments",
    "image_miou",
    "iou_matrix",
    "match_segments",
    "overlap",
    "pooled_miou",
    "pr_curve",
    "precision_recall_f",
    "relabel_connected",
    "upsample_labels",
]
