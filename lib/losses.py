"""The papers' losses.

The per-image self-training methods' losses return one value per image: per-image values (never
a mean over the batch) keep the B models of a batch independent, since the optimiser minimises
their sum, whose gradient with respect to model b is model b's own. The dataset-level methods'
losses (JigsawGAN, SegGAN, at the end) are means over the batch, as their papers train.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F


def argmax_labels(response: torch.Tensor) -> torch.Tensor:
    """``(B, q, H, W)`` responses -> ``(B, H, W)`` labels c = argmax y' (Kanezaki 2018, Sec. 2.2).

    ``max(1).indices`` is ``argmax(1)`` (both documented to return the first maximum on ties) and
    on a CPU runs 2x faster over the channel axis of an NCHW tensor (64 x 256 x 256: 12 against
    26 ms on a 2-core AMD EPYC); the loop takes it at every iteration.
    """
    return response.max(1).indices


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
    theta = torch.tensor(thetas)
    if torch.device(device).type == "cuda":  # from pinned memory, without waiting for the device
        return theta.pin_memory().to(device, non_blocking=True)
    return theta.to(device)


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
    return pseudo_label_cross_entropy(aux, argmax_labels(response))


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


# --------------------------------------------------------------------------------------------
# JigsawGAN (Peña Alarcón 2024, UCL report): the GAN losses L_D and L_G of section 2 with their
# jigsaw terms, and the fine-tuning loss. Unlike the per-image losses above, these are batch
# means: JigsawGAN trains one network over a dataset. The weights alpha = 1 (D) and beta = 0.2
# (G) are those of the authors' code (kawaiiblitz/GAN_SelfSupervised @5a8e92f, pretrain.py,
# ``train_loop``), the weights of SS-GAN; the report gives none.

from .jigsaw import random_shuffle  # noqa: E402  (used by the JigsawGAN section only)

if TYPE_CHECKING:
    from .models.jigsawgan import Discriminator


def _real_fake_bce(d: "Discriminator", output: torch.Tensor, target: float) -> torch.Tensor:
    """The report's binary cross-entropy terms against ``target`` (1 real, 0 fake): on
    probabilities (the authors' ``nn.BCELoss``, logs clamped at -100) when D's heads end in a
    sigmoid (the code form), on logits with the stable log-sigmoid otherwise (corrected form)."""
    labels = torch.full_like(output, target)
    if d.sigmoid_heads:
        return F.binary_cross_entropy(output, labels)
    return F.binary_cross_entropy_with_logits(output, labels)


def _said_real(d: "Discriminator", output: torch.Tensor) -> torch.Tensor:
    """The share of images D calls real (probability > 0.5, i.e. logit > 0)."""
    return (output > (0.5 if d.sigmoid_heads else 0.0)).float().mean()


def _jigsaw_term(d: "Discriminator", images: torch.Tensor, perms: torch.Tensor,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """CE(D_J(S_k(x)), k) for one permutation class k per image, drawn uniformly, and D's accuracy
    on it. ``F.cross_entropy`` is applied to whatever the jigsaw head returns: sigmoid outputs in
    the code form, as the authors' ``nn.CrossEntropyLoss`` on their sigmoid head (its floor is
    :func:`code_form_jigsaw_floor`), logits in the corrected form."""
    shuffled, labels = random_shuffle(images, perms, generator)
    _, jigsaw = d(shuffled)
    return F.cross_entropy(jigsaw, labels), (jigsaw.argmax(1) == labels).float().mean()


def discriminator_loss(d: "Discriminator", real: torch.Tensor, fake: torch.Tensor,
                       perms: torch.Tensor | None = None, alpha: float = 1.0,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """D's loss, the report's L_D (section 2) with the jigsaw term of the authors' pretrain.py:

        BCE(D_rf(x_r), 1) + BCE(D_rf(x_f), 0) + alpha * CE(D_J(S_k(x_r)), k),

    the jigsaw term on shuffled *real* images only, and only when ``perms`` is given (None is the
    GAN without jigsaw). ``fake`` is detached: no gradient reaches G. Like the authors' loop, D sees
    three separate batches (real, shuffled real, fake), so each gets its own BatchNorm statistics.

    Returns the loss and its parts, detached 0-d tensors: ``rf_real``, ``rf_fake``, the shares
    ``real_accuracy`` (reals called real) and ``fake_accuracy`` (fakes called fake), and with
    ``perms`` also ``jigsaw`` (the CE before alpha) and ``jigsaw_accuracy``.
    """
    rf_real, _ = d(real)
    loss_real = _real_fake_bce(d, rf_real, 1.0)
    parts: dict[str, torch.Tensor] = {"rf_real": loss_real.detach(), "real_accuracy": _said_real(d, rf_real.detach())}
    loss = loss_real
    if perms is not None:
        jigsaw, accuracy = _jigsaw_term(d, real, perms, generator)
        loss = loss + alpha * jigsaw
        parts.update(jigsaw=jigsaw.detach(), jigsaw_accuracy=accuracy.detach())
    rf_fake, _ = d(fake.detach())
    loss_fake = _real_fake_bce(d, rf_fake, 0.0)
    parts.update(rf_fake=loss_fake.detach(), fake_accuracy=1 - _said_real(d, rf_fake.detach()))
    return loss + loss_fake, parts


def generator_loss(d: "Discriminator", fake: torch.Tensor, perms: torch.Tensor | None = None,
                   beta: float = 0.2, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """G's loss, the report's L_G (section 2) in the non-saturating form the authors' pretrain.py
    trains, with its jigsaw term:

        BCE(D_rf(x_f), 1) + beta * CE(D_J(S_k(x_f)), k),

    the second term (only with ``perms``) back-propagated through the shuffle into G, which thus
    learns to make its shuffled fakes' permutation predictable. Returns the loss and its parts,
    detached: ``rf_fake`` and, with ``perms``, ``jigsaw`` (the CE before beta)."""
    rf_fake, _ = d(fake)
    loss = _real_fake_bce(d, rf_fake, 1.0)
    parts: dict[str, torch.Tensor] = {"rf_fake": loss.detach()}
    if perms is not None:
        jigsaw, _ = _jigsaw_term(d, fake, perms, generator)
        loss = loss + beta * jigsaw
        parts["jigsaw"] = jigsaw.detach()
    return loss, parts


def code_form_jigsaw_floor(classes: int) -> float:
    """The lowest value the code form's jigsaw loss can take: cross-entropy over ``classes``
    outputs that are each in [0, 1] (the authors' CrossEntropyLoss on a sigmoid head).

    With outputs o and target k, CE(o, k) = -o_k + log sum_j exp(o_j). Its derivative in o_k is
    softmax(o)_k - 1 < 0 and in any o_j (j != k) softmax(o)_j > 0, everywhere, so over the box
    [0, 1]^classes the minimum is at the corner o_k = 1, o_j = 0:

        -log(e / (e + classes - 1)) = log(e + classes - 1) - 1,

    about 2.457 for 30 outputs (the authors' head, also for 4 tiles) and 2.247 for 24. A batch
    mean of such terms has the same floor.
    """
    if classes < 1:
        raise ValueError(f"classes={classes}: the jigsaw head needs at least one output")
    return math.log(math.e + classes - 1) - 1


def segmentation_loss(output: torch.Tensor, target: torch.Tensor, softmax_output: bool) -> torch.Tensor:
    """The fine-tuning loss (report section 2, "CrossEntropyLoss"): ``F.cross_entropy(output,
    target)``, the mean over pixels and images, in both forms. With ``softmax_output`` (the code
    form) ``output`` is already a softmax, so the cross-entropy applies a second one (the double
    softmax of the authors' finetune.py, CrossEntropyLoss after their Softmax layer); otherwise
    ``output`` holds logits. ``output`` ``(N, classes, H, W)``, ``target`` ``(N, H, W)`` class indices.
    """
    del softmax_output  # the same call in both forms: the flag only says what ``output`` holds
    return F.cross_entropy(output, target.long())


# --------------------------------------------------------------------------------------------
# SegGAN (Zhang et al., BigMM 2018, section II.B): content and adversarial losses of a
# mask-to-image GAN, used to train the GAN (stage 1) and then as a loss for DeepLab (stage 2).

#: how the side that produces I^R (G in stage 1, the segmentation network in stage 2) minimises
#: the adversarial loss: "minimax" = log(1 - D(I^R)) as eq. (5) writes it; "non-saturating" =
#: -log D(I^R) (Goodfellow et al. 2014's practical variant, which keeps a gradient when D wins)
ADVERSARIAL = ("minimax", "non-saturating")


def content_loss(reconstruction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """SegGAN eq. (4): l_C = (1 / WH) sum_ij (I_ij - I^R_ij)^2, the pixel-wise mean squared error
    (here also averaged over the three channels and the batch)."""
    return F.mse_loss(reconstruction, image)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's side of SegGAN eq. (1)/(5): maximise log D(I) + log(1 - D(I^R)), i.e. minimise the
    binary cross-entropy of real patches against 1 and reconstructed ones against 0 (D outputs
    logits per patch; each term is averaged over patches and images)."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def adversarial_loss(fake_logits: torch.Tensor, form: str = "minimax") -> torch.Tensor:
    """The adversarial term l_A that G (eq. 6) or the segmentation network (eq. 2) minimises.
    Only log(1 - D(I^R)) of eq. (5) depends on them: ``"minimax"`` minimises it as written
    (= -BCE(D(I^R), 0), which is log(1 - sigmoid(logit)) computed stably as -softplus(logit));
    ``"non-saturating"`` minimises -log D(I^R) = BCE(D(I^R), 1) instead."""
    if form == "minimax":
        return -F.softplus(fake_logits).mean()
    if form == "non-saturating":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    raise ValueError(f"adversarial form {form!r}: use one of {', '.join(ADVERSARIAL)}")


def one_hot_masks(labels: torch.Tensor, classes: int, ignore_index: int = 255) -> torch.Tensor:
    """Ground-truth label maps (N, H, W) as the probabilities G reads in stage 1 (N, classes, H, W):
    one-hot per pixel, and all zeros where the label is ``ignore_index`` (unknown / void)."""
    valid = labels != ignore_index
    hot = F.one_hot(torch.where(valid, labels, 0).long(), classes).permute(0, 3, 1, 2).float()
    return hot * valid.unsqueeze(1)
