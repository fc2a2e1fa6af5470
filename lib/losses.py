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


def continuity_loss(response: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Spatial continuity loss of Kim, Kanezaki & Tanaka (TIP 2020), L_con in DynamicSeg Eq. (1):
    the mean absolute vertical difference plus the mean absolute horizontal difference of the
    normalised response, each averaged over its (H-1)·W·q or H·(W-1)·q elements, per image (as
    ``nn.L1Loss`` against zeros does in the authors' code).

    ``kind="smooth_l1"`` uses the Huber form with beta = 1 (0.5 d^2 below |d| = 1) found in
    DynamicSeg's public file (bijou-bijou/DynamicSeg @059a26a, ``F.smooth_l1_loss``).

    Returns ``(B,)`` losses.
    """
    dy = response[:, :, 1:, :] - response[:, :, :-1, :]
    dx = response[:, :, :, 1:] - response[:, :, :, :-1]
    if kind == "l1":
        penalty = torch.abs
    elif kind == "smooth_l1":
        def penalty(d: torch.Tensor) -> torch.Tensor:
            a = d.abs()
            return torch.where(a < 1, 0.5 * a * a, a - 0.5)
    else:
        raise ValueError(f"continuity loss kind={kind!r}: use 'l1' (Kim et al.) or 'smooth_l1' (DynamicSeg's file)")
    return penalty(dy).flatten(1).mean(1) + penalty(dx).flatten(1).mean(1)
