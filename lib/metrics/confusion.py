"""Dense (per-pixel) class segmentation scores from a confusion matrix, and the JigsawGAN report's protocol.

The study scores a whole split from ONE confusion matrix accumulated over all its pixels (:class:`ConfusionMatrix`):
pixel accuracy, class accuracy, per-class IoU and their mean. The JigsawGAN report (Pena Alarcon 2024; authors'
``finetune.py`` @5a8e92f) instead computes, per batch, torchmetrics' micro accuracy and
``MulticlassJaccardIndex(3, average='micro', ignore_index=1)`` and averages the batch values
(:class:`ReportProtocol`). Its "IoU" drops every pixel whose *target* is background before counting, then also
subtracts background's own union, so a background pixel predicted as pet or border is never a false positive and
the pooled ratio sum(TP) / sum(TP + FP + FN) runs over pet and border only: it is neither a per-class IoU nor a
mean IoU, and predicting "pet" everywhere outside the border scores 1.0 when pet and border are right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: Oxford-IIIT Pet trimap classes in the study's numbering (trimap value - 1).
PET_TRIMAP_CLASSES: tuple[str, ...] = ("pet", "background", "border")


def _integer_labels(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` flattened to int64 if it is an integer (or bool) tensor, else a ``ValueError`` naming ``name``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: a {type(x).__name__}; pass a torch tensor of integer class labels")
    if x.is_floating_point() or x.is_complex():
        raise ValueError(f"{name}: {x.dtype} values; pass integer class labels (e.g. logits.argmax(1))")
    return x.reshape(-1).long()


def _check_range(values: torch.Tensor, classes: int, name: str) -> None:
    """``ValueError`` naming the first value of ``values`` outside ``[0, classes)``."""
    bad = (values < 0) | (values >= classes)
    if bool(bad.any()):
        value = int(values[bad][0])
        raise ValueError(f"{name}: label {value} outside [0, {classes}) for {classes} classes")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, classes: int,
                     ignore_index: int | None = None) -> torch.Tensor:
    """Pixel counts ``C[t, p]`` = number of pixels with target class ``t`` predicted as class ``p``.

    ``pred`` and ``target`` are integer label tensors of one shape (any shape: a map, a batch, a flat vector).
    Pixels whose target equals ``ignore_index`` are dropped first (their prediction is not looked at); every
    other target value, and the prediction of every kept pixel, must lie in ``[0, classes)`` (``ValueError``
    naming the value). Computed with one ``torch.bincount`` on the inputs' device; returns int64
    ``(classes, classes)``, rows = target, columns = prediction.
    """
    if classes < 1:
        raise ValueError(f"classes = {classes}; pass at least 1")
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target {tuple(target.shape)}; they must match")
    p, t = _integer_labels(pred, "pred"), _integer_labels(target, "target")
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    _check_range(t, classes, "target")
    _check_range(p, classes, "pred")
    counts = torch.bincount(t * classes + p, minlength=classes * classes)
    return counts.reshape(classes, classes)


def _ratio(num: float, den: float) -> float:
    """``num / den``, or nan when ``den`` is 0 (e.g. a class with no pixel)."""
    return num / den if den > 0 else math.nan


def _mean(values: Sequence[float]) -> float:
    """The mean of the values that are not nan; nan when none is."""
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan


def _names(classes: int, names: Sequence[str] | None) -> list[str]:
    """``names`` as a list, or ``"0"``, ``"1"``, ... when None; a ``ValueError`` unless there is one per class."""
    if names is None:
        return [str(c) for c in range(classes)]
    if len(names) != classes:
        raise ValueError(f"{len(names)} names {list(names)} for {classes} classes")
    return list(names)


def scores(matrix: torch.Tensor, names: Sequence[str] | None = None) -> dict:
    """The study's scores of one confusion matrix (rows = target, columns = prediction), as Python floats.

    - ``pixel_accuracy``: correctly labelled pixels / all counted pixels (trace / total).
    - ``class_accuracy``: mean over the classes present in the target (row sum > 0) of the per-class recall
      ``C[c, c] / row_c``; a class that is only predicted does not enter.
    - ``iou``: ``{name: C[c, c] / (row_c + col_c - C[c, c])}``, i.e. TP / (TP + FP + FN) of each class; ``nan``
      for a class absent from both target and prediction (0/0), 0.0 for one only predicted or only in the target.
    - ``mean_iou``: mean of the defined (non-nan) per-class IoUs.

    Every ratio with an empty denominator is ``nan``. ``names`` label the classes (default ``"0"``, ``"1"``, ...).
    """
    m = matrix.detach().to("cpu", torch.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix is square; got shape {tuple(m.shape)}")
    labels = _names(m.shape[0], names)
    tp, rows, cols = m.diagonal().tolist(), m.sum(1).tolist(), m.sum(0).tolist()
    recall = [tp[c] / rows[c] for c in range(len(tp)) if rows[c] > 0]
    iou = {name: _ratio(tp[c], rows[c] + cols[c] - tp[c]) for c, name in enumerate(labels)}
    return {
        "pixel_accuracy": _ratio(sum(tp), sum(rows)),
        "class_accuracy": _mean(recall),
        "iou": iou,
        "mean_iou": _mean(list(iou.values())),
    }


class ConfusionMatrix:
    """One confusion matrix accumulated over batches (int64, on the device of the first batch).

    ``update`` adds :func:`confusion_matrix` of each batch; :meth:`scores` gives :func:`scores` of the sum, so a
    split scored in batches equals the split scored at once whatever the batch sizes.
    """

    def __init__(self, classes: int, names: Sequence[str] | None = None, ignore_index: int | None = None):
        self.classes = classes
        self.names = _names(classes, names)
        self.ignore_index = ignore_index
        self.matrix: torch.Tensor | None = None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add the pixel counts of one batch (see :func:`confusion_matrix`)."""
        counts = confusion_matrix(pred, target, self.classes, self.ignore_index)
        self.matrix = counts if self.matrix is None else self.matrix + counts.to(self.matrix.device)

    def counts(self) -> torch.Tensor:
        """The accumulated matrix on the CPU (zeros before the first update)."""
        if self.matrix is None:
            return torch.zeros(self.classes, self.classes, dtype=torch.long)
        return self.matrix.cpu()

    def scores(self) -> dict:
        """``pixel_accuracy``, ``class_accuracy``, ``iou`` (by name) and ``mean_iou`` of the accumulated matrix."""
        return scores(self.counts(), self.names)


def _safe_ratio(num: float, den: float) -> float:
    """torchmetrics' ``_safe_divide`` with its default ``zero_division=0``: 0/0 is 0."""
    return num / den if den > 0 else 0.0


def _micro_jaccard(matrix: torch.Tensor, ignore_index: int | None) -> float:
    """torchmetrics ``_jaccard_index_reduce(confmat, 'micro', ignore_index)``: sum of the diagonal over the sum of
    the per-class unions ``row_c + col_c - C[c, c]``, less the ignored class's union when it is a class index."""
    m = matrix.to(torch.float64)
    tp = m.diagonal()
    union = m.sum(0) + m.sum(1) - tp
    den = float(union.sum())
    if ignore_index is not None and 0 <= ignore_index < m.shape[0]:
        den -= float(union[ignore_index])
    return _safe_ratio(float(tp.sum()), den)


def report_batch_scores(pred: torch.Tensor, target: torch.Tensor, ignore_index: int | None = 1,
                        classes: int = 3) -> tuple[float, float]:
    """The JigsawGAN report's two numbers for ONE batch: ``(pixel_accuracy, jaccard)``.

    - ``pixel_accuracy``: torchmetrics ``MulticlassAccuracy(classes, average='micro')`` = correct pixels / all
      pixels of the batch (background included).
    - ``jaccard``: torchmetrics ``MulticlassJaccardIndex(classes, average='micro', ignore_index=ignore_index)``:
      the pixels whose target is ``ignore_index`` (background in the report) are removed, ``C`` is built from the
      rest, and ``sum_c C[c, c] / (sum_c union_c - union_ignored)`` with ``union_c = row_c + col_c - C[c, c]``;
      ``union_ignored`` is the kept pixels predicted as the ignored class, so false positives on background are
      never counted. 0/0 gives 0 (torchmetrics' ``zero_division`` default), e.g. a batch that is all background.

    ``pred`` holds class labels (the argmax of the network's output), same shape as ``target``.
    """
    full = confusion_matrix(pred, target, classes)
    accuracy = _safe_ratio(float(full.diagonal().sum()), float(full.sum()))
    kept = full if ignore_index is None else confusion_matrix(pred, target, classes, ignore_index)
    return accuracy, _micro_jaccard(kept, ignore_index)


class ReportProtocol:
    """The JigsawGAN report's evaluation: :func:`report_batch_scores` per batch, then the plain mean over batches.

    The mean is unweighted, as in the authors' ``finetune.py``: a short last batch (or one with few non-background
    pixels) counts as much as a full one, so the result depends on the batch size and order, unlike
    :class:`ConfusionMatrix`.
    """

    def __init__(self, ignore_index: int | None = 1, classes: int = 3):
        self.ignore_index = ignore_index
        self.classes = classes
        self.batches: list[tuple[float, float]] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
        """Score one batch, remember it and return its ``(pixel_accuracy, jaccard)``."""
        batch = report_batch_scores(pred, target, self.ignore_index, self.classes)
        self.batches.append(batch)
        return batch

    def scores(self) -> dict:
        """``pixel_accuracy`` and ``iou``: means over batches of the batch values (``nan`` before any update);
        ``batches``: how many batches were averaged."""
        n = len(self.batches)
        if n == 0:
            return {"pixel_accuracy": math.nan, "iou": math.nan, "batches": 0}
        return {
            "pixel_accuracy": sum(a for a, _ in self.batches) / n,
            "iou": sum(j for _, j in self.batches) / n,
            "batches": n,
        }
