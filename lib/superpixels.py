"""SLIC superpixels and the superpixel refinement of Kanezaki 2018 (Sec. 2.2, Algorithm 1).

Within each superpixel S_k every pixel's label is replaced by the most frequent label c_max.
:func:`majority_vote` does this for a whole batch in three tensor operations on the model's
device (one count of (superpixel, label) pairs into a table of known size, an ``argmax``, a
gather): no Python loop over superpixels or pixels, and nothing that makes the host wait. Ties
go to the smallest label, as ``np.argmax`` over the sorted ``np.unique`` labels does in the
authors' loop. :class:`SuperpixelVote` numbers a batch's superpixels once and then votes at
every iteration.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from skimage.segmentation import slic


def slic_superpixels(image: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC (Achanta et al. 2012) with scikit-image's defaults otherwise; labels ``0..K'-1``.

    ``image`` is passed as given: the authors' code hands SLIC a BGR array (OpenCV order), which
    scikit-image then converts to Lab as if it were RGB.
    """
    labels = slic(image, n_segments=n_segments, compactness=compactness, start_label=0)
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape)


class SuperpixelVote:
    """Majority label per superpixel for a batch of images (Sec. 2.2).

    Args:
        superpixels: one ``(H, W)`` integer map per image, labels ``0..K_b-1``.
        classes: q, the number of possible labels.
        device: where the votes are counted (the model's device).
    """

    def __init__(self, superpixels: Sequence[np.ndarray], classes: int, device: torch.device | str = "cpu"):
        maps = [torch.as_tensor(np.asarray(s), dtype=torch.long) for s in superpixels]
        counts = torch.tensor([int(m.max()) + 1 for m in maps])
        offsets = torch.cumsum(counts, 0) - counts
        # one id per (image, superpixel), so a single count serves the whole batch
        self.ids = torch.stack([m + o for m, o in zip(maps, offsets)]).to(device)
        self.n_superpixels = int(counts.sum())
        self.classes = classes

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` argmax labels -> refined labels c' of the same shape."""
        return majority_vote(labels, self.ids, self.n_superpixels, self.classes)


def majority_vote(labels: torch.Tensor, superpixels: torch.Tensor, n_superpixels: int,
                  classes: int) -> torch.Tensor:
    """Kanezaki 2018, Sec. 2.2 (Algorithm 1, lines 8-10): every pixel of a superpixel S_k takes
    c_max, the label most frequent in S_k; ties go to the smallest label.

    Args:
        labels: ``(B, H, W)`` int64 argmax labels c_n in ``0..classes-1``.
        superpixels: ``(B, H, W)`` int64 superpixel of each pixel, numbered ``0..n_superpixels-1``
            over the whole batch (no two images share a number).
        n_superpixels: how many superpixels the batch holds.
        classes: q, the number of possible labels.
    Returns:
        ``(B, H, W)`` int64 refined labels c'_n.
    """
    pairs = (superpixels * classes + labels).flatten()  # one number per (superpixel, label)
    votes = torch.zeros(n_superpixels * classes, dtype=torch.long, device=labels.device)
    votes.scatter_add_(0, pairs, torch.ones_like(pairs))  # bincount would read max() on the host
    winner = votes.view(n_superpixels, classes).argmax(1)  # first maximum = smallest label
    return winner[superpixels]


def majority_vote_reference(labels: np.ndarray, superpixels: np.ndarray) -> np.ndarray:
    """Plain per-superpixel loop, written like the authors' demo.py; for tests and benchmarks only."""
    flat, sp = labels.ravel().copy(), superpixels.ravel()
    for k in np.unique(sp):
        idx = np.where(sp == k)[0]
        values, counts = np.unique(flat[idx], return_counts=True)
        flat[idx] = values[np.argmax(counts)]
    return flat.reshape(labels.shape)
