"""The per-image self-training loop of Kanezaki 2018, Kim 2020 / DynamicSeg and S3-Net.

Algorithm 1 of Kanezaki 2018, for a batch of B independent models at once:

    for t = 1..T:
        y' = model(x)                      # responses
        c  = argmax y'                     # current labels, q' = their number
        L  = loss(y', c, q')               # one value per image: the paper's loss
        SGD step on sum_b L_b

What differs between papers lives with the paper (``lib/methods/<paper>.py``): the loss (CE on
superpixel-refined labels, plus a continuity term, plus transformation terms) and the stop rule.
Stop rules: a fixed number of iterations (the papers), or a rule checked after each update,
such as the authors' codes' "stop once the argmax has <= 3 labels" (:func:`stop_at_labels`),
with at most ``iterations`` updates. An image that stops keeps the labels of a forward pass
after its last update (as demo.py does when it saves its result) and leaves the loss; the
others go on. The number of updates each image received and its label count at every
iteration are recorded.

The loop never makes the host wait for the device: labels are counted (with sizes known in
advance: no ``bincount``), the stop rule checked and stopped images' labels kept on the device.
Whether every image has stopped reaches the host through :func:`all_stopped`: at once on a
CPU, and on a GPU as a flag copied asynchronously into pinned memory, read once the copy has
landed, a few iterations later. The iterations the loop may run meanwhile change no result
(a stopped image's labels are already kept and it gets no gradient); its histories are cut at
the last update.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import layout as layouts
from ..losses import argmax_labels


@dataclass
class LoopResult:
    labels: np.ndarray  # (B, H, W) final argmax labels
    iterations: np.ndarray  # (B,) parameter updates made for each image
    n_labels: np.ndarray  # (B,) distinct labels in the final map
    label_history: np.ndarray  # (B, t) distinct argmax labels at each iteration (before refinement)
    loss_history: np.ndarray  # (B, t) loss at each iteration (nan once an image has stopped)
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)  # updates made -> (B, H, W) argmax labels
    layout: str = ""  # the network's memory layout (lib/layout.py); "" for a network without one


def count_labels(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """``(B, H, W)`` labels -> ``(B,)`` number of distinct labels per image. A scatter into a
    ``(B, classes)`` table: unlike ``bincount``, whose CUDA kernel reads the largest label on
    the host to size its output, it never waits for the device."""
    present = torch.zeros(labels.shape[0], classes, dtype=torch.bool, device=labels.device)
    return present.scatter_(1, labels.flatten(1), True).sum(1)


class all_stopped:
    """Tells the host whether every image has stopped, without waiting for the device: on a CPU
    at once; on CUDA from ``done.all()`` copied into pinned memory without blocking, answered
    once that copy has landed (at most ``depth`` iterations behind, then it waits)."""

    def __init__(self, device: torch.device, depth: int = 8):
        self.cuda, self.depth = device.type == "cuda", depth
        self.pending: deque = deque()  # (event, pinned flag) of the last iterations

    def __call__(self, done: torch.Tensor) -> bool:
        if not self.cuda:
            return bool(done.all())
        flag = torch.empty((), dtype=torch.bool, pin_memory=True)
        flag.copy_(done.all(), non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.pending.append((event, flag))
        if len(self.pending) > self.depth:
            self.pending[0][0].synchronize()
        stopped = False
        while self.pending and self.pending[0][0].query():
            stopped |= bool(self.pending.popleft()[1])  # host memory: reading it waits for nothing
        return stopped


Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Stop = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def stop_at_labels(max_labels: int, min_updates: int = 0) -> Stop:
    """The authors' codes' rule: stop an image once its argmax has <= ``max_labels`` labels,
    after at least ``min_updates`` updates (S3-Net's code: 6). ``(n_labels, updates) -> (B,) bool``."""
    def stop(n_labels: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        return (n_labels <= max_labels) & (updates >= min_updates)
    return stop


def self_train(
    model: torch.nn.Module,
    x: torch.Tensor,
    *,
    iterations: int,
    lr: float,
    momentum: float,
    loss: Loss,
    stop: Stop | None = None,
    progress: bool = False,
    desc: str = "self-training",
    snapshots: Sequence[int] = (),
) -> LoopResult:
    """Run the loop above on ``x`` of shape ``(B, C, H, W)``; see the module docstring.

    Args:
        model: B independent networks mapping ``(B, C, H, W)`` to ``(B, q, H, W)`` responses.
        loss: ``(response, labels, n_labels) -> (B,)``, one loss per image.
        stop: ``(n_labels, updates) -> (B,) bool``, checked after each update with the label
            count of that update's forward pass (None: run all ``iterations``).
        snapshots: keep the argmax labels seen after these numbers of updates (for figures).
    """
    if iterations < 0:
        raise ValueError(f"iterations={iterations} must be >= 0")
    B = x.shape[0]
    device = x.device
    if hasattr(model, "layout"):
        model.layout = layouts.choose(model, x)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    stopping = torch.zeros_like(done)  # met the stop rule at the last update
    updates = torch.zeros(B, dtype=torch.long, device=device)
    final = None
    label_hist, loss_hist = [], []
    classes = 0
    kept: dict[int, np.ndarray] = {}
    finished = all_stopped(device)
    bar = tqdm(total=iterations, desc=desc, disable=not progress, leave=False)
    for _ in range(iterations):
        response = model(x)
        classes = response.shape[1]
        labels = argmax_labels(response)
        n_labels = count_labels(labels, classes)
        if len(label_hist) in snapshots:
            kept[len(label_hist)] = labels.cpu().numpy()
        if final is None:
            final = torch.zeros_like(labels)
        final = torch.where(stopping[:, None, None], labels, final)  # a mask index would sync
        done |= stopping
        if finished(done):
            break
        active = ~done
        value = loss(response, labels, n_labels)
        optimiser.zero_grad(set_to_none=True)
        torch.where(active, value, torch.zeros_like(value)).sum().backward()
        optimiser.step()
        updates += active.long()
        label_hist.append(torch.where(active, n_labels, 0))
        loss_hist.append(torch.where(active, value.detach(), torch.nan))
        if stop is not None:
            stopping = active & stop(n_labels, updates)
        bar.update(1)
    bar.close()
    if final is None or not bool(done.all()):
        with torch.no_grad():  # the labels after the last update (demo.py's saved result)
            response = model(x)
        classes = response.shape[1]
        labels = argmax_labels(response)
        final = labels if final is None else torch.where(done[:, None, None], final, labels)
        if len(label_hist) in snapshots:
            kept[len(label_hist)] = labels.cpu().numpy()
    n_final = count_labels(final, classes)
    last = int(updates.max()) if label_hist else 0  # iterations run after every image stopped
    label_hist, loss_hist = label_hist[:last], loss_hist[:last]
    kept = {k: v for k, v in kept.items() if k <= last}
    empty = torch.zeros(B, 0)
    return LoopResult(
        labels=final.cpu().numpy(),
        iterations=updates.cpu().numpy(),
        n_labels=n_final.cpu().numpy(),
        label_history=torch.stack(label_hist, 1).cpu().numpy() if label_hist else empty.long().numpy(),
        loss_history=torch.stack(loss_hist, 1).cpu().numpy() if loss_hist else empty.numpy(),
        snapshots=kept,
        layout=str(getattr(model, "layout", "")),
    )
