"""Segmentation metrics.

- ``segments``: connected components, overlaps, IoU matrices (shared machinery).
- ``bsds_miou``: the Kim et al. (TIP 2020) BSDS500 mIoU protocol, All / Fine / Coarse / Mean.
- ``segment_pr``: Kanezaki (ICASSP 2018) segment precision / recall / F, PR curves and AP.
- ``region``: the BSDS500 region benchmarks: Segmentation Covering, PRI, VOI.
- ``confusion``: pixel accuracy and per-class / mean IoU over a split from one confusion matrix,
  and JigsawGAN's batch-averaged reporting protocol.

Ground-truth labels below zero mark pixels that do not count (e.g. PASCAL VOC's void border
when it is dropped): see :func:`lib.evaluation.evaluate_image`.
"""

from .bsds_miou import ImageMIoU, image_miou, pooled_miou
from .confusion import (PET_TRIMAP_CLASSES, ConfusionMatrix, ReportProtocol, confusion_matrix, report_batch_scores,
                        scores)
from .region import ImageRegion, pooled_region, region_scores
from .segment_pr import PRCurve, SegmentMatches, match_segments, pr_curve, precision_recall_f
from .segments import (binary_mask, count_segments, iou_matrix, label_map, overlap, relabel_connected,
                       upsample_labels)

__all__ = [
    "PET_TRIMAP_CLASSES",
    "ConfusionMatrix",
    "ImageMIoU",
    "ImageRegion",
    "PRCurve",
    "ReportProtocol",
    "SegmentMatches",
    "binary_mask",
    "confusion_matrix",
    "count_segments",
    "image_miou",
    "iou_matrix",
    "label_map",
    "match_segments",
    "overlap",
    "pooled_miou",
    "pooled_region",
    "pr_curve",
    "precision_recall_f",
    "region_scores",
    "relabel_connected",
    "report_batch_scores",
    "scores",
    "upsample_labels",
]
