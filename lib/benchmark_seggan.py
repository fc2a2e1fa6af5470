"""Speed of SegGAN's training: ``python -m lib benchmark --method seggan [--backbone resnet101]
[--crop 240] [--batch 8] [--iterations N] [--device cuda]``.

Times iterations per second of the three loops of ``lib/methods/seggan.py``, each with its own
step function (:func:`lib.methods.seggan.gan_step`, :func:`~lib.methods.seggan.segmentation_step`)
on batches of random crops read as the study reads them: stage 1 (G and D), stage 2 (DeepLab with
the frozen GAN as a loss) and the DeepLab baseline. Images: Stanford Background's training images
under ``--data-root`` when present, else built-in pet-like images at 320 x 240. From the measured
rates it estimates the wall time of the ``paper`` profile's runs (20,000 iterations per stage;
Table II: 3 seeds x (DeepLab + 2 generator inputs x (GAN + SegGAN))).
"""

from __future__ import annotations

import argparse
import time

import torch

from . import layout
from .runtime import resolve_device

#: the paper profile's runs per table (3 seeds): GAN trainings and DeepLab / SegGAN trainings
PAPER_RUNS = {"table2 (Stanford Background)": (6, 9), "table1 (VOC 2012)": (6, 9),
              "lambda grid (Stanford, 15 weightings)": (6, 3 + 2 * 15 * 3)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark_data(data_root=None, n: int = 16):
    """The benchmark's labelled set: Stanford Background's first ``n`` training images, or
    built-in pet-like images at 320 x 240 when it is absent."""
    from . import data
    from .data.stanford_background import CLASSES
    from .methods.seggan import LabelledSet
    from .metrics.confusion import PET_TRIMAP_CLASSES

    try:
        train = list(data.load("stanford_background", root=data_root, split="train", limit=n))
        return LabelledSet("stanford_background", CLASSES, train, [], "Stanford Background train")
    except data.DatasetNotFound:
        train = list(data.load("synthetic_pets", n=n, size=(240, 320)))
        return LabelledSet("synthetic_pets", PET_TRIMAP_CLASSES, train, [], "synthetic pets 320x240")


def time_seggan(labelled, setting, iterations: int, device: torch.device) -> dict[str, float]:
    """Iterations per second of stage 1, stage 2 and the baseline (one untimed warm-up each)."""
    from .data.crops import Crops, draw_crops, loader
    from .methods import seggan
    from .models.seggan import segmentation_net
    from .runtime import generator

    crops = Crops(labelled.train, setting.crop, setting.max_side)
    rng = generator("benchmark")
    batches = [b for b in loader(crops, [draw_crops(len(crops), setting.batch, rng) for _ in range(iterations + 1)])]
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    seeds = torch.randint(0, 2**62, (len(batches),), generator=rng)
    classes = len(labelled.classes)

    def rate(step) -> float:
        step(*batches[0], seeds[0])  # warm-up: kernels chosen, memory allocated
        _sync(device)
        start = time.perf_counter()
        for (x, y), seed in zip(batches[1:], seeds[1:]):
            step(x, y, seed)
        _sync(device)
        return iterations / (time.perf_counter() - start)

    g, d = seggan.build_gan(setting, classes, device)
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=setting.gan_lr, fused=True) for m in (g, d))
    out = {"gan_iterations_per_second": rate(lambda x, y, s: seggan.gan_step(g, d, opt_g, opt_d, x, y, setting, s))}
    gan = seggan.GAN(setting, g, d, [], None)
    seggan.freeze(gan)
    for name, with_gan in (("seggan", gan), ("deeplab", None)):
        net = segmentation_net(classes, setting.backbone, generator=generator("deeplab")).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=setting.lr, fused=True)
        out[f"{name}_iterations_per_second"] = rate(
            lambda x, y, s: seggan.segmentation_step(net, opt, x, y, setting, with_gan, s))
    return out


def estimates(rates: dict[str, float], iterations: int = 20000) -> dict[str, float]:
    """Hours of one device for each paper-profile table, from the measured rates (every SegGAN
    run taken at SegGAN's rate, every DeepLab run at the baseline's; evaluation not counted)."""
    gan_s = iterations / rates["gan_iterations_per_second"]
    seg_s = iterations / rates["seggan_iterations_per_second"]
    base_s = iterations / rates["deeplab_iterations_per_second"]
    out = {}
    for table, (gans, runs) in PAPER_RUNS.items():
        deeplab = 3  # one per seed
        out[f"estimated_hours_{table}"] = (gans * gan_s + (runs - deeplab) * seg_s + deeplab * base_s) / 3600
    return out


def main(args: argparse.Namespace, device: torch.device | None = None) -> int:
    from .benchmark import print_result
    from .methods.seggan import Setting

    device = device or resolve_device(args.device)
    labelled = benchmark_data(args.data_root)
    setting = Setting(backbone=args.backbone, crop=args.crop, batch=args.batch or 8)
    result = {"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
              "machine": layout.machine(device), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "method": "seggan", "images": labelled.note, "backbone": setting.backbone, "crop": setting.crop,
              "batch": setting.batch, "timed_iterations": args.iterations}
    rates = time_seggan(labelled, setting, args.iterations, device)
    result.update(rates)
    result.update(estimates(rates))
    print_result(result, args.json)
    return 0
