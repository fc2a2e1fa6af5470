"""Losses of the per-image self-training methods, each returning one value per image.

Per-image values (never a mean over the batch) keep the B models of a batch independent: the
optimiser minimises their sum, whose gradient with respect to model b is model b's own.
"""

from __future__ import annotations

import math

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
    if response.stride(1) == 1 and response.shape[1] > 1:  # channels-last: q is the innermost axis
        # the softmax over a contiguous axis is ~2x faster than F.cross_entropy's over dim 1 here
        log_p = F.log_softmax(response.movedim(1, -1), -1)
        return -log_p.gather(-1, target.unsqueeze(-1)).flatten(1).mean(1)
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


# --------------------------------------------------------------------------------------------
# S3-Net (Karimijafarbigloo et al., ICCV-W 2023): consistency over transformation and edges


def random_affine(generators: list[torch.Generator], rotation: float = 15.0, scale: float = 0.1,
                  shift: float = 0.05, device: torch.device | str = "cpu") -> torch.Tensor:
    """One random affine map per image, as ``(B, 2, 3)`` matrices for ``F.affine_grid``: rotation
    in ±``rotation`` degrees, isotropic scale in 1 ± ``scale``, shift in ±``shift`` of the image
    (the paper names "affine transformations" without ranges; these are the study's)."""
    thetas = []
    for g in generators:
        a, s, tx, ty = (torch.rand(4, generator=g) * 2 - 1).tolist()
        angle, k = math.radians(a * rotation), 1 + s * scale
        c, si = math.cos(angle) * k, math.sin(angle) * k
        thetas.append([[c, -si, 2 * shift * tx], [si, c, 2 * shift * ty]])
    return torch.tensor(thetas, device=device)


def warp(t: torch.Tensor, theta: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Apply ``(B, 2, 3)`` affine maps to ``(B, C, H, W)`` (bilinear). The maps act on normalised
    coordinates, so on a non-square image a "rotation" also shears slightly."""
    grid = F.affine_grid(theta.to(t.dtype), list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def transformation_consistency(model: torch.nn.Module, x: torch.Tensor, response: torch.Tensor,
                               theta: torch.Tensor) -> torch.Tensor:
    """S3-Net's consistency over transformation as the paper describes it: the prediction for
    T(x) is pulled towards T applied to the prediction for x,

        L_AT = mean over valid pixels of CE( softmax(f(T(x))), T(softmax(f(x))) ),

    with a random affine T per image and iteration, pixels that T brings from outside the image
    left out of the loss (the input is padded with its border values, so no black corners enter
    the second forward's statistics), and the gradient flowing through both predictions — which
    also makes the term minimise the prediction's entropy (for T = identity it *is* the mean
    entropy). One more forward pass per iteration. Returns ``(B,)``."""
    rt = model(warp(x, theta, padding="border"))
    target = warp(torch.softmax(response, 1), theta)
    valid = warp(torch.ones_like(x[:, :1]), theta) > 0.999
    ce = -(target * torch.log_softmax(rt, 1)).sum(1, keepdim=True)
    return (ce * valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)


def head_consistency(response: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
    """The authors' code form of L_AT: both heads' outputs rotated by the same 90 degrees, then
    CE(auxiliary head, argmax of the main head). A common rotation only permutes pixels, so this
    is the plain CE between the two heads: no transformation ever reaches the input. ``(B,)``."""
    return pseudo_label_cross_entropy(aux, response.argmax(1))


def edge_aware_continuity(response: torch.Tensor, image: torch.Tensor, sigma: float = 0.1) -> torch.Tensor:
    """A differentiable edge-based spatial consistency (the study's form of the paper's L_S):
    Kim et al.'s continuity term with each neighbour difference weighted by
    exp(-|grey difference of the image| / sigma), so labels are pulled together inside regions
    and left free to change across the image's edges. ``image`` in [0, 1]. ``(B,)``."""
    grey = image.mean(1, keepdim=True)
    wy = torch.exp(-(grey[:, :, 1:] - grey[:, :, :-1]).abs() / sigma)
    wx = torch.exp(-(grey[:, :, :, 1:] - grey[:, :, :, :-1]).abs() / sigma)
    dy = (response[:, :, 1:] - response[:, :, :-1]).abs()
    dx = (response[:, :, :, 1:] - response[:, :, :, :-1]).abs()
    return (wy * dy).flatten(1).mean(1) + (wx * dx).flatten(1).mean(1)


@torch.no_grad()
def edge_disagreement_constant(labels: torch.Tensor, image: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """The authors' code form of L_S, in kind: it compares the edges of a colour rendering of the
    argmax with the image's edges (OpenCV there) — a number computed from integer labels, so it
    carries no gradient and cannot steer the network. Here: the share of pixels where "a label
    boundary" and "an image edge (Sobel magnitude > ``threshold``)" disagree. ``(B,)``, detached."""
    lab = labels.unsqueeze(1).float()
    boundary = torch.zeros_like(lab, dtype=torch.bool)
    boundary[:, :, :-1] |= lab[:, :, 1:] != lab[:, :, :-1]
    boundary[:, :, :, :-1] |= lab[:, :, :, 1:] != lab[:, :, :, :-1]
    grey = image.mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=image.device).view(1, 1, 3, 3) / 8
    gx = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kx)
    gy = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kx.transpose(2, 3))
    edges = torch.hypot(gx, gy) > threshold
    return (boundary != edges).float().flatten(1).mean(1)
