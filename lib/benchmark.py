"""Speed of the per-image loops: ``python -m lib benchmark [--method kim2020|s3net|s3net-code] [--reference] [--device cuda]``.

Reports (i) seconds per iteration for one 481 x 321 image (M = 2, p = q = 100, the paper's
arithmetic) with this study's loop (Kanezaki 2018's, or with ``--method kim2020`` the continuity
loss of Kim et al. / DynamicSeg, no superpixels; ``s3net`` is S3-Net's paper form with all three
losses at the image's own size, ``s3net-code`` the authors' code form at 256 x 256), (ii) images x iterations per second for a batch of
independent models, and with ``--reference`` (iii) the same single-image loop written the way
the authors' demo.py runs it: default (NCHW) memory layout, labels copied to the host every
iteration and the superpixel vote as a Python loop over superpixels (no display). The arithmetic
of the network is identical in all three; only the machinery around it differs.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from .losses import continuity_loss, pseudo_label_cross_entropy
from .loops import self_train
from .methods import Kanezaki2018, Kim2020, S3Net
from .methods.kanezaki2018 import build_networks, input_tensor
from .runtime import resolve_device, tune_cpu_allocator
from .superpixels import majority_vote_reference


def _bsds_like_image(data_root) -> tuple[np.ndarray, str]:
    from . import data

    try:
        s = data.load("bsds500", root=data_root, limit=1)[0]
        image = s.image if s.image.shape[0] == 321 else np.ascontiguousarray(s.image.transpose(1, 0, 2))
        return image, f"BSDS500 test {s.id}"
    except data.DatasetNotFound:
        return data.load("synthetic", n=1, size=(321, 481))[0].image, "synthetic 321x481"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_study_loop(images: list[np.ndarray], layers: int, iterations: int, device: torch.device,
                    method: str = "kanezaki2018") -> float:
    """Seconds per iteration of lib's loop for a batch of ``images`` (one warm-up iteration first)."""
    if device.type == "cpu":
        tune_cpu_allocator()  # as the runner does
    if method == "kanezaki2018":
        m = Kanezaki2018(form="paper", n_layers=layers, iterations=iterations)
        x, vote = m.prepare(images, device)
        model = m.build_model([(0, i) for i in range(len(images))], device)
        kw = dict(loss=lambda r, labels, q: pseudo_label_cross_entropy(r, vote(labels)))
    elif method == "kim2020":
        m = Kim2020(5.0, form="paper", n_layers=layers)
        x = input_tensor(images, m.config.bgr, device)
        model = build_networks(m.config, [(0, i) for i in range(len(images))], device)
        kw = dict(loss=lambda r, labels, q: pseudo_label_cross_entropy(r, labels) + 5.0 * continuity_loss(r))
    elif method in ("s3net", "s3net-code"):
        # min_labels=0: the stop rule off, so every timed iteration runs (the model is rebuilt per call)
        form = "code" if method == "s3net-code" else "paper"
        seeds = list(range(len(images)))
        S3Net(form=form, iterations=1, min_labels=0).optimise(images, seeds, device)  # warm-up
        _sync(device)
        start = time.perf_counter()
        S3Net(form=form, iterations=iterations, min_labels=0).optimise(images, seeds, device)
        _sync(device)
        return (time.perf_counter() - start) / iterations
    else:
        raise ValueError(f"method={method!r}: kanezaki2018, kim2020, s3net or s3net-code")
    self_train(model, x, iterations=1, lr=0.1, momentum=0.9, **kw)  # warm-up (kernel selection)
    _sync(device)
    start = time.perf_counter()
    self_train(model, x, iterations=iterations, lr=0.1, momentum=0.9, **kw)
    _sync(device)
    # self_train ends with one extra forward pass for the final labels; count it in, conservatively
    return (time.perf_counter() - start) / iterations


class _ReferenceNet(torch.nn.Module):
    """The same network as one plain (ungrouped, NCHW) module, as demo.py builds it."""

    def __init__(self, layers: int, p: int = 100):
        super().__init__()
        self.convs = torch.nn.ModuleList([torch.nn.Conv2d(3 if i == 0 else p, p, 3, padding=1) for i in range(layers)])
        self.bns = torch.nn.ModuleList([torch.nn.BatchNorm2d(p) for _ in range(layers)])
        self.cls = torch.nn.Conv2d(p, p, 1)
        self.bn = torch.nn.BatchNorm2d(p)

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns):
            x = bn(F.relu(conv(x)))
        return self.bn(self.cls(x))


def time_reference_loop(image: np.ndarray, layers: int, iterations: int, device: torch.device) -> float:
    """Seconds per iteration of a loop structured like the authors' demo.py (see module docstring)."""
    method = Kanezaki2018(form="code", n_layers=layers)
    bgr = np.ascontiguousarray(image[..., ::-1])
    from .superpixels import slic_superpixels

    sp = slic_superpixels(bgr, 10_000, 100.0)
    x = torch.from_numpy(bgr.transpose(2, 0, 1).astype(np.float32)[None] / 255).to(device)
    torch.manual_seed(0)
    model = _ReferenceNet(layers).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=method.config.lr, momentum=method.config.momentum)

    def step():
        opt.zero_grad()
        out = model(x)[0].permute(1, 2, 0).reshape(-1, 100)
        target = out.argmax(1).cpu().numpy()
        len(np.unique(target))  # nLabels, as demo.py prints it
        refined = majority_vote_reference(target.reshape(sp.shape), sp).ravel()
        loss = F.cross_entropy(out, torch.from_numpy(refined).to(device))
        loss.backward()
        opt.step()

    step()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    _sync(device)
    return (time.perf_counter() - start) / iterations


def main(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if args.layers is None:
        args.layers = 3 if args.method == "kim2020" else 2
    image, source = _bsds_like_image(args.data_root)
    batch = args.batch or (2 if device.type == "cpu" else 16)
    result = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "image": f"{source}, {image.shape[1]}x{image.shape[0]}", "method": args.method,
        "layers": "two I-LKA blocks" if args.method.startswith("s3net") else args.layers, "timed_iterations": args.iterations,
    }
    if args.reference and args.method != "kanezaki2018":
        raise ValueError("--reference times demo.py's loop: use it with --method kanezaki2018")
    if args.reference:
        # first, before lib's loop tunes the CPU allocator: demo.py runs with the default one
        result["reference_seconds_per_iteration"] = time_reference_loop(image, args.layers, args.iterations, device)
    result["study_seconds_per_iteration"] = time_study_loop([image], args.layers, args.iterations, device, args.method)
    result["study_cpu_allocator_tuned"] = tune_cpu_allocator() if device.type == "cpu" else False
    batch_spi = time_study_loop([image] * batch, args.layers, args.iterations, device, args.method)
    result["batch_images"] = batch
    result["batch_image_iterations_per_second"] = batch / batch_spi
    best = max(1 / result["study_seconds_per_iteration"], result["batch_image_iterations_per_second"])
    if args.estimate:  # wall time of one paper-profile row: images x iterations / throughput
        images, its = args.estimate
        result[f"estimated_hours_for_{images}_images_x_{its}_iterations"] = images * its / best / 3600
    if args.reference:
        result["speedup_vs_reference"] = result["reference_seconds_per_iteration"] / result["study_seconds_per_iteration"]
        if result["study_cpu_allocator_tuned"]:  # how much of the gain is the allocator alone
            result["reference_with_tuned_allocator_seconds_per_iteration"] = time_reference_loop(image, args.layers, args.iterations, device)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:<54} {v:.3f}" if isinstance(v, float) else f"{k:<54} {v}")
    return 0
