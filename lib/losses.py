"""Losses of the per-image self-training methods, each returning one value per image.

Per-image values (never a mean over the batch) keep the B models of a batch independent: the
optimiser minimises their sum, whose gradient with respect to model b is model b's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pseudo_label_cross_entropy(response: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Softmax (cross-entropy) loss between responses y' and fixed labels c' (Kanezaki 2018,
    Sec. 2.4), averaged over the N pixels of each image.

    Args:
        response: ``(B, q, H, W)`` normalised responses.
        target: ``(B, H, W)`` labels in ``0..q-1`` (no gradient flows into them).
    Returns:
        ``(B,)`` losses.
    """
    return F.cross_entropy(response, target, reduction="none").flatten(1).mean(1)
