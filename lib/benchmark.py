"""Speed of the per-image loops: ``python -m lib benchmark [--method ...] [--reference]
[--authors-demo DEMO_PY] [--device cuda]``.

Reports (i) seconds per iteration for one 481 x 321 image (M = 2, p = q = 100, the paper's
arithmetic) with this study's loop (:data:`LOOPS`: Kanezaki 2018's; ``kim2020`` the continuity
loss of Kim et al. / DynamicSeg, no superpixels; ``s3net`` S3-Net's paper form with all three
losses at the image's size, ``s3net-code`` the authors' code form at 256 x 256), (ii) images x
iterations per second for a batch of independent models, (iii) with ``--reference`` the loop of
the authors' demo.py rewritten step for step (:func:`time_reference_loop`), timed with the
default allocator and again with the study's, and (iv) with ``--authors-demo`` the published
demo.py itself, unchanged (:func:`time_published_demo`), so that the reference can be checked
against it on any machine. The network's arithmetic is the same in all; the memory layout of
the study's loop is the one measured fastest on the machine (``lib/layout.py``) and is printed.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from .losses import continuity_loss, pseudo_label_cross_entropy
from .loops import self_train
from .methods import Kanezaki2018, Kim2020, S3Net
from .methods.kanezaki2018 import build_networks, input_tensor
from . import layout
from .runtime import resolve_device, tune_cpu_allocator


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


def _kanezaki2018_step(images, layers, device):
    m = Kanezaki2018(form="paper", n_layers=layers)
    x, vote = m.prepare(images, device)
    model = m.build_model([(0, i) for i in range(len(images))], device)
    return model, x, lambda r, labels, q: pseudo_label_cross_entropy(r, vote(labels))


def _kim2020_step(images, layers, device):
    m = Kim2020(5.0, form="paper", n_layers=layers)
    x = input_tensor(images, m.config.bgr, device)
    model = build_networks(m.config, [(0, i) for i in range(len(images))], device)
    return model, x, lambda r, labels, q: pseudo_label_cross_entropy(r, labels) + 5.0 * continuity_loss(r)


def _s3net_seconds(form: str):
    def seconds(images, layers, iterations, device) -> float:
        # min_labels=0: the stop rule off, so every timed iteration runs (the model is rebuilt per call)
        seeds = list(range(len(images)))
        S3Net(form=form, iterations=1, min_labels=0).optimise(images, seeds, device)  # warm-up, layout probe
        _sync(device)
        start = time.perf_counter()
        S3Net(form=form, iterations=iterations, min_labels=0).optimise(images, seeds, device)
        _sync(device)
        return (time.perf_counter() - start) / iterations
    return seconds


def _self_train_seconds(build):
    def seconds(images, layers, iterations, device) -> float:
        model, x, loss = build(images, layers, device)
        self_train(model, x, iterations=1, lr=0.1, momentum=0.9, loss=loss)  # warm-up (layout probe, kernels)
        _sync(device)
        start = time.perf_counter()
        self_train(model, x, iterations=iterations, lr=0.1, momentum=0.9, loss=loss)
        _sync(device)
        # self_train ends with one extra forward pass for the final labels; count it in, conservatively
        return (time.perf_counter() - start) / iterations
    return seconds


#: what ``--method`` times: seconds per iteration of a batch of images. A dataset-level trainer
#: (JigsawGAN, SegGAN) joins with its own entry: seconds per training step of a batch.
LOOPS = {
    "kanezaki2018": _self_train_seconds(_kanezaki2018_step),
    "kim2020": _self_train_seconds(_kim2020_step),
    "s3net": _s3net_seconds("paper"),
    "s3net-code": _s3net_seconds("code"),
}


def time_study_loop(images: list[np.ndarray], layers: int, iterations: int, device: torch.device,
                    method: str = "kanezaki2018") -> float:
    """Seconds per iteration of lib's loop for a batch of ``images`` (one warm-up iteration first)."""
    if method not in LOOPS:
        raise ValueError(f"method={method!r}: {', '.join(LOOPS)}")
    if device.type == "cpu":
        tune_cpu_allocator()  # as the runner does
    return LOOPS[method](images, layers, iterations, device)


class _DemoNet(torch.nn.Module):
    """demo.py's ``MyNet``: conv1 -> ReLU -> bn1, (M - 1) x (conv -> ReLU -> bn), conv3 (1x1) -> bn3,
    with PyTorch's default initialisation and affine BatchNorms, one plain (ungrouped) module."""

    def __init__(self, layers: int, channels: int = 100):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, channels, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(channels)
        self.conv2 = torch.nn.ModuleList([torch.nn.Conv2d(channels, channels, 3, padding=1) for _ in range(layers - 1)])
        self.bn2 = torch.nn.ModuleList([torch.nn.BatchNorm2d(channels) for _ in range(layers - 1)])
        self.conv3 = torch.nn.Conv2d(channels, channels, 1)
        self.bn3 = torch.nn.BatchNorm2d(channels)

    def forward(self, x):
        x = self.bn1(F.relu(self.conv1(x)))
        for conv, bn in zip(self.conv2, self.bn2):
            x = bn(F.relu(conv(x)))
        return self.bn3(self.conv3(x))


def time_reference_loop(image: np.ndarray, layers: int, iterations: int, device: torch.device) -> float:
    """Seconds per iteration of demo.py's loop (kanezaki/pytorch-unsupervised-segmentation
    @478e67e, ``--visualize 0``), step for step: a BGR image / 255 in the default layout, SLIC
    (K = 10000, compactness 100) with each superpixel's pixel indices found once before the loop
    (``np.where``), then per iteration: forward, ``permute(1, 2, 0).contiguous().view(-1, q)``,
    ``torch.max``, the labels to the host, ``np.unique`` for the label count, the superpixel
    refinement as demo.py's Python loop (per superpixel ``np.unique``, then one ``np.where`` count
    per label, then ``np.argmax``), cross-entropy, backward, an SGD step (lr 0.1, momentum 0.9),
    and the progress line it prints. ``--authors-demo`` times the published script itself.
    """
    from .superpixels import slic_superpixels

    bgr = np.ascontiguousarray(image[..., ::-1])
    data = torch.from_numpy(np.array([bgr.transpose((2, 0, 1)).astype("float32") / 255.0])).to(device)
    sp = slic_superpixels(bgr, 10_000, 100.0).reshape(-1)
    indices = [np.where(sp == k)[0] for k in np.unique(sp)]
    torch.manual_seed(0)
    model = _DemoNet(layers).to(device).train()
    loss_fn = torch.nn.CrossEntropyLoss()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(t: int) -> None:
        optimiser.zero_grad()
        output = model(data)[0].permute(1, 2, 0).contiguous().view(-1, 100)
        _, target = torch.max(output, 1)
        im_target = target.data.cpu().numpy()
        n_labels = len(np.unique(im_target))
        for idx in indices:  # demo.py's superpixel refinement
            labels_per_sp = im_target[idx]
            u_labels_per_sp = np.unique(labels_per_sp)
            hist = np.zeros(len(u_labels_per_sp))
            for j in range(len(hist)):
                hist[j] = len(np.where(labels_per_sp == u_labels_per_sp[j])[0])
            im_target[idx] = u_labels_per_sp[np.argmax(hist)]
        loss = loss_fn(output, torch.from_numpy(im_target).to(device))
        loss.backward()
        optimiser.step()
        f"{t} / {iterations} : {n_labels} {loss.item()}"  # the line demo.py prints (not shown here)

    step(0)  # warm-up
    _sync(device)
    start = time.perf_counter()
    for t in range(iterations):
        step(t)
    _sync(device)
    return (time.perf_counter() - start) / iterations


#: runs the published demo.py unchanged: a stand-in ``cv2`` (imread through Pillow as BGR, no
#: window), and a ``print`` that notes the time of each per-iteration line
_DEMO_HARNESS = """
import builtins, runpy, sys, time, types
import numpy as np
from PIL import Image
cv2 = types.ModuleType("cv2")
cv2.imread = lambda path: np.array(Image.open(path).convert("RGB"))[..., ::-1].copy()
cv2.imshow = cv2.waitKey = lambda *a: None
cv2.imwrite = lambda *a: True
sys.modules["cv2"] = cv2
stamps = []
builtins.print = lambda *a, **k: stamps.append(time.perf_counter())
script, image, iterations = sys.argv[1:4]
sys.argv = [script, "--input", image, "--visualize", "0", "--maxIter", iterations, "--minLabels", "0"]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    sys.stdout.write(" ".join(repr(b - a) for a, b in zip(stamps, stamps[1:])) + "\\n")
"""


def time_published_demo(script: str, image: np.ndarray, iterations: int) -> float:
    """Median seconds per iteration of the authors' demo.py itself, run as published in a fresh
    Python (its default allocator, its own imports; the first iteration is left out)."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from PIL import Image

    if not Path(script).is_file():
        raise ValueError(f"--authors-demo {script}: no such file (demo.py of kanezaki/pytorch-unsupervised-segmentation)")
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "image.png"
        Image.fromarray(image).save(png)
        done = subprocess.run([sys.executable, "-c", _DEMO_HARNESS, str(Path(script).resolve()), str(png),
                               str(iterations + 1)], capture_output=True, text=True, cwd=tmp)
    if done.returncode != 0:
        raise ValueError(f"--authors-demo {script} failed:\n{done.stderr[-2000:]}")
    gaps = [float(v) for v in done.stdout.split()]
    return float(np.median(gaps)) if gaps else float("nan")


def main(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if args.layers is None:
        args.layers = 3 if args.method == "kim2020" else 2
    image, source = _bsds_like_image(args.data_root)
    batch = args.batch or (2 if device.type == "cpu" else 16)
    result = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "machine": layout.machine(device), "torch_threads": torch.get_num_threads(),
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
    result["study_layouts"] = "; ".join(f"{shape} -> {chosen}" for shape, chosen in layout.chosen().items())
    best = max(1 / result["study_seconds_per_iteration"], result["batch_image_iterations_per_second"])
    if args.estimate:  # wall time of one paper-profile row: images x iterations / throughput
        images, its = args.estimate
        result[f"estimated_hours_for_{images}_images_x_{its}_iterations"] = images * its / best / 3600
    if args.authors_demo:
        result["published_demo_seconds_per_iteration"] = time_published_demo(args.authors_demo, image, args.iterations)
        result["speedup_vs_published_demo"] = (result["published_demo_seconds_per_iteration"]
                                               / result["study_seconds_per_iteration"])
    if args.reference:
        result["speedup_vs_reference"] = result["reference_seconds_per_iteration"] / result["study_seconds_per_iteration"]
        if args.authors_demo:  # 1.0: the reference is as fast as the published script
            result["reference_over_published_demo"] = (result["reference_seconds_per_iteration"]
                                                       / result["published_demo_seconds_per_iteration"])
        if result["study_cpu_allocator_tuned"]:  # how much of the gain is the allocator alone
            result["reference_with_tuned_allocator_seconds_per_iteration"] = time_reference_loop(image, args.layers, args.iterations, device)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:<54} {v:.3f}" if isinstance(v, float) else f"{k:<54} {v}")
    return 0
