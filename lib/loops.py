"""The per-image self-training loop shared by Kanezaki 2018 (and, later, Kim 2020 / DynamicSeg).

Algorithm 1 of Kanezaki 2018, for a batch of B independent models at once:

    for t = 1..T:
        y' = model(x)                      # normalised responses
        c  = argmax y'                     # current labels
        c' = refine(c)                     # e.g. the superpixel majority vote
        L  = CE(y', c') (+ extra terms)    # one value per image
        SGD step on sum_b L_b

Stop rules: a fixed number of iterations (the papers), or the authors' code rule "stop once the
argmax has <= ``min_labels`` labels" checked after each update, with at most ``iterations``
updates. An image that stops keeps the labels of a forward pass after its last update (as
demo.py does when it saves its result) and leaves the loss; the others go on. The number of
updates each image received and its label count at every iteration are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .losses import pseudo_label_cross_entropy
from .runtime import tune_cpu_allocator


@dataclass
class LoopResult:
    labels: np.ndarray  # (B, H, W) final argmax labels
    iterations: np.ndarray  # (B,) parameter updates made for each image
    n_labels: np.ndarray  # (B,) distinct labels in the final map
    label_history: np.ndarray  # (B, t) distinct argmax labels at each iteration (before refinement)
    loss_history: np.ndarray  # (B, t) loss at each iteration (nan once an image has stopped)
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)  # updates made -> (B, H, W) argmax labels


def count_labels(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """``(B, H, W)`` labels -> ``(B,)`` number of distinct labels per image (one bincount)."""
    B = labels.shape[0]
    offsets = torch.arange(B, device=labels.device)[:, None] * classes
    present = torch.bincount((labels.flatten(1) + offsets).flatten(), minlength=B * classes)
    return (present.view(B, classes) > 0).sum(1)


def self_train(
    model: torch.nn.Module,
    x: torch.Tensor,
    *,
    iterations: int,
    lr: float,
    momentum: float,
    refine: Callable[[torch.Tensor], torch.Tensor] | None = None,
    extra_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    min_labels: int | None = None,
    min_iterations: int = 0,
    ce_weight: float = 1.0,
    progress: bool = False,
    desc: str = "self-training",
    snapshots: Sequence[int] = (),
) -> LoopResult:
    """Run the loop above on ``x`` of shape ``(B, C, H, W)``; see the module docstring.

    Args:
        model: B independent networks mapping ``(B, C, H, W)`` to ``(B, q, H, W)`` responses.
        refine: turns argmax labels into targets (identity when None).
        extra_loss: ``(response, n_labels) -> (B,)`` added to the cross-entropy.
        min_labels: the authors' early stop (None: run all ``iterations``), checked once an image
            has had ``min_iterations`` updates (S3-Net's code: 6).
        ce_weight: weight of the cross-entropy term (S3-Net's code: 3.5).
        snapshots: keep the argmax labels seen after these numbers of updates (for figures).
    """
    if iterations < 0:
        raise ValueError(f"iterations={iterations} must be >= 0")
    B = x.shape[0]
    device = x.device
    if device.type == "cpu":
        tune_cpu_allocator()
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    stopping = torch.zeros_like(done)  # reached min_labels at the last update
    updates = torch.zeros(B, dtype=torch.long, device=device)
    final = None
    label_hist, loss_hist = [], []
    classes = 0
    kept: dict[int, np.ndarray] = {}
    bar = tqdm(total=iterations, desc=desc, disable=not progress, leave=False)
    for _ in range(iterations):
        response = model(x)
        classes = response.shape[1]
        labels = response.argmax(1)
        n_labels = count_labels(labels, classes)
        if len(label_hist) in snapshots:
            kept[len(label_hist)] = labels.cpu().numpy()
        if final is None:
            final = torch.zeros_like(labels)
        final[stopping] = labels[stopping]
        done |= stopping
        if bool(done.all()):
            break
        active = ~done
        target = refine(labels) if refine is not None else labels
        loss = ce_weight * pseudo_label_cross_entropy(response, target)
        if extra_loss is not None:
            loss = loss + extra_loss(response, n_labels)
        optimiser.zero_grad(set_to_none=True)
        torch.where(active, loss, torch.zeros_like(loss)).sum().backward()
        optimiser.step()
        updates += active.long()
        label_hist.append(torch.where(active, n_labels, 0))
        loss_hist.append(torch.where(active, loss.detach(), torch.nan))
        if min_labels is not None:
            stopping = active & (n_labels <= min_labels) & (updates >= min_iterations)
        bar.update(1)
    bar.close()
    if final is None or not bool(done.all()):
        with torch.no_grad():  # the labels after the last update (demo.py's saved result)
            response = model(x)
        classes = response.shape[1]
        labels = response.argmax(1)
        final = labels if final is None else torch.where(done[:, None, None], final, labels)
        if len(label_hist) in snapshots:
            kept[len(label_hist)] = labels.cpu().numpy()
    n_final = count_labels(final, classes)
    empty = torch.zeros(B, 0)
    return LoopResult(
        labels=final.cpu().numpy(),
        iterations=updates.cpu().numpy(),
        n_labels=n_final.cpu().numpy(),
        label_history=torch.stack(label_hist, 1).cpu().numpy() if label_hist else empty.long().numpy(),
        loss_history=torch.stack(loss_hist, 1).cpu().numpy() if loss_hist else empty.numpy(),
        snapshots=kept,
    )
