"""Evaluators: what the runner (``lib/runs.py``) asks of an evaluation (:class:`Evaluator`), and
the two the study has: BSDS-style region scores and S3-Net's lesion masks.

One :class:`ImageEval` per (method, seed, image) holds everything the metrics need: the Kim
mIoU scores and Kanezaki's segment matches (any IoU threshold >= 0.5 is applied later), both
from one IoU matrix per annotator over the prediction's 4-connected segments, and the BSDS
region benchmarks (covering, Rand index, VOI) on the label map as given, as the BSDS500
benchmark code scores a submission (a clustering method's label that is spread over the image
counts there as one region).

Ground-truth pixels with a negative label do not count (PASCAL VOC's void border, when it is
dropped): they are removed from the prediction and the ground truth after the prediction has
been split into connected components, so a segment that crosses the void stays one segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from .metrics import ImageMIoU, ImageRegion, SegmentMatches, pooled_miou, pooled_region, pr_curve, precision_recall_f, region_scores
from .metrics.segments import compact, iou_matrix, relabel_connected, upsample_labels


class Evaluator(Protocol):
    """Scores one image's label map against its ground truth, stores and restores that score in
    the run cache, and pools the scores of one run (one method, one seed, one dataset)."""

    #: part of the cache path: two evaluators with different settings never share records
    key: str
    #: the dataset-level numbers of :meth:`summarize`, in table order
    metrics: tuple[str, ...]

    def evaluate(self, labels: np.ndarray, sample) -> Any:
        """The score of ``labels`` (at the method's resolution) against ``sample``'s ground truth."""

    def to_arrays(self, evaluation: Any) -> dict[str, np.ndarray]:
        """The score as named arrays (stored in the record's ``.npz``)."""

    def from_arrays(self, arrays: dict[str, np.ndarray], sample) -> Any | None:
        """The stored score, or None when it was computed against other ground truth (recompute)."""

    def summarize(self, evaluations: Sequence[Any]) -> dict[str, float]:
        """Dataset-level numbers of one run, named as :attr:`metrics`."""


@dataclass(frozen=True)
class ImageEval:
    miou: ImageMIoU
    matches: SegmentMatches
    region: ImageRegion

    @property
    def n_segments(self) -> int:
        return self.miou.n_segments

    def to_arrays(self) -> dict[str, np.ndarray]:
        m = self.matches
        return {
            "gt_lengths": np.array([len(s) for s in self.miou.scores]),
            "gt_best_iou": m.gt_best_iou,
            "gt_best_pred": m.gt_best_pred,
            "area": m.area,
            "pred_best_iou": m.pred_best_iou,
            "reg_covered": self.region.covered,
            "reg_pixels": self.region.pixels,
            "reg_rand": self.region.rand,
            "reg_voi": self.region.voi,
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "ImageEval":
        splits = np.cumsum(a["gt_lengths"])[:-1]
        scores = tuple(np.split(a["gt_best_iou"], splits))
        matches = SegmentMatches(a["area"], a["pred_best_iou"], a["gt_best_iou"], a["gt_best_pred"])
        region = ImageRegion(a["reg_covered"], a["reg_pixels"], a["reg_rand"], a["reg_voi"])
        return cls(ImageMIoU(scores, int(len(a["area"]))), matches, region)


def evaluate_image(pred: np.ndarray, segmentations: Sequence[np.ndarray], connectivity: int = 1) -> ImageEval:
    """Score ``pred`` against every annotator. A prediction made on a shrunken copy of the image
    (see :func:`lib.data.resize_image`) is brought to the ground truth's size by nearest neighbour;
    any other size is refused."""
    if not segmentations:
        raise ValueError("no ground-truth segmentation to evaluate against")
    shape = segmentations[0].shape
    if pred.shape != shape:
        scale = max(pred.shape) / max(shape)
        expected = (max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale)))
        if scale > 1 or pred.shape != expected:
            raise ValueError(f"a {pred.shape[0]}x{pred.shape[1]} prediction is not a shrunken copy of the "
                             f"{shape[0]}x{shape[1]} ground truth (expected {expected[0]}x{expected[1]})")
    pred = upsample_labels(pred, shape)
    segments = relabel_connected(pred, connectivity)
    valid = np.logical_and.reduce([np.asarray(gt) >= 0 for gt in segmentations])
    if not valid.all():  # void pixels: out of every count
        if not valid.any():
            raise ValueError("every ground-truth pixel is void: nothing to evaluate")
        segments, pred = compact(segments[valid])[0], pred[valid]
        segmentations = [np.asarray(gt)[valid] for gt in segmentations]
    ious = [iou_matrix(segments, gt) for gt in segmentations]
    area = np.bincount(segments.ravel()) / segments.size
    return ImageEval(ImageMIoU.from_ious(ious), SegmentMatches.from_ious(ious, area), region_scores(pred, segmentations))


def summarize(evals: Iterable[ImageEval], thresholds: Sequence[float] = (0.5, 0.7)) -> dict[str, float]:
    """Dataset-level numbers of one run (one method, one seed):

    - ``miou_all/fine/coarse/mean``: the Kim protocol (pooled over segments);
    - ``f_<t>``, ``precision_<t>``, ``recall_<t>``: Kanezaki's per-image values, averaged over images;
    - ``ap_<t>``: average precision of the size-ranked PR curve;
    - ``covering``, ``pri``, ``voi``: the BSDS500 region benchmarks (see ``lib/metrics/region.py``);
    - ``segments``: mean number of 4-connected predicted segments per image.
    """
    evals = list(evals)
    out = {f"miou_{k}": v for k, v in pooled_miou(e.miou for e in evals).items()}
    out.update(pooled_region(e.region for e in evals))
    for t in thresholds:
        prf = np.array([precision_recall_f(e.matches, t) for e in evals])
        out[f"precision_{t}"], out[f"recall_{t}"], out[f"f_{t}"] = prf.mean(0).tolist()
        out[f"ap_{t}"] = pr_curve((e.matches for e in evals), t).ap
    out["segments"] = float(np.mean([e.n_segments for e in evals]))
    return out


class RegionEvaluator:
    """The BSDS-style evaluation above, packaged for the runner (``lib/runs.py``): Kim mIoU,
    Kanezaki segment P/R/F/AP and the region benchmarks against every annotator."""

    key = "region"
    metrics = ("miou_all", "miou_fine", "miou_coarse", "miou_mean", "f_0.5", "ap_0.5", "ap_0.7",
               "covering", "pri", "voi", "segments",
               "precision_0.5", "recall_0.5", "precision_0.7", "recall_0.7", "f_0.7")

    def evaluate(self, labels: np.ndarray, sample) -> ImageEval:
        return evaluate_image(labels, sample.segmentations)

    def to_arrays(self, ev: ImageEval) -> dict[str, np.ndarray]:
        return ev.to_arrays()

    def from_arrays(self, arrays: dict[str, np.ndarray], sample) -> ImageEval | None:
        """The stored evaluation, or None when the sample's ground truth no longer matches it."""
        now = [len(np.unique(s[s >= 0])) for s in sample.segmentations]  # void (< 0) does not count
        if "gt_lengths" not in arrays or list(arrays["gt_lengths"]) != now:
            return None
        return ImageEval.from_arrays(arrays)

    def summarize(self, evals: Sequence[ImageEval]) -> dict[str, float]:
        return summarize(evals)


class LesionEvaluator:
    """S3-Net's binary-mask evaluation under both protocols (``lib/metrics/lesion.py``)."""

    metrics = (*(f"{p}_{m}" for p in ("authors", "gtfree") for m in ("dsc", "hm", "xor", "hausdorff", "hd95", "empty")),
               "gt_at_border")

    def __init__(self, dilation: int = 4, min_interior: float = 0.01):
        self.dilation, self.min_interior = dilation, min_interior
        self.key = f"lesion-sq{dilation}-i{min_interior:g}"  # a square dilation (keys "-d": the earlier disk)

    def evaluate(self, labels: np.ndarray, sample) -> dict[str, float]:
        from .metrics.lesion import protocol_scores

        (gt,) = sample.segmentations
        out = protocol_scores(labels, sample.image, gt, self.dilation, self.min_interior)
        out["gt_pixels"], out["gt_height"], out["gt_width"] = float(gt.astype(bool).sum()), *map(float, gt.shape)
        return out

    def to_arrays(self, ev: dict[str, float]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in ev.items()}

    def from_arrays(self, arrays: dict[str, np.ndarray], sample) -> dict[str, float] | None:
        """The stored scores, or None when the sample's mask is not the one they were computed on."""
        (gt,) = sample.segmentations
        now = (float(gt.astype(bool).sum()), *map(float, gt.shape))
        if "authors_dsc" not in arrays or tuple(float(arrays.get(k, -1)) for k in ("gt_pixels", "gt_height", "gt_width")) != now:
            return None
        return {k: float(v) for k, v in arrays.items()}

    def summarize(self, evals: Sequence[dict[str, float]]) -> dict[str, float]:
        """Means over images, in percent for DSC / HM / XOR as the paper prints them; Hausdorff in
        pixels over the images where it is defined, with ``<protocol>_empty`` counting the others."""
        evals = list(evals)
        out: dict[str, float] = {}
        for key in (k for k in evals[0] if k.startswith(("authors_", "gtfree_"))):
            values = np.array([e[key] for e in evals], dtype=float)
            if key.endswith(("hausdorff", "hd95")):
                out[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            else:
                out[key] = 100 * float(np.nanmean(values))
        for protocol in ("authors", "gtfree"):
            out[f"{protocol}_empty"] = float(sum(not np.isfinite(e[f"{protocol}_hausdorff"]) for e in evals))
        out["gt_at_border"] = float(sum(e.get("gt_at_border", 0.0) for e in evals))
        return out
