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

``--method jigsawgan [--batches N] [--images N]`` times JigsawGAN's dataset-level training
instead (:func:`time_jigsawgan`): images per second of pre-training (the step of
:func:`lib.methods.jigsawgan.pretrain`, corrected form, 9 tiles: L_D then L_G with the batched
``lib.jigsaw`` shuffler) and of fine-tuning (SegmentationNet, Adam 4e-4, cross-entropy), in
batches of 16 of uint8 images held in memory (Animals-90 / Oxford-IIIT Pet under ``--data-root``
when present, else synthetic pets at 256 x 256), and the same two for the benchmark's reference,
written the way the authors' code runs them (kawaiiblitz/GAN_SelfSupervised @5a8e92f): a
DataLoader over a Dataset that re-reads, decodes and resizes each JPEG (and trimap) on every
fetch, and the tiles shuffled per image in Python loops (:func:`reference_shuffle_image`), with
the same networks and losses; then the ratios study / reference.

``--method seggan`` times SegGAN's two stages and its baseline (``lib/benchmark_seggan.py``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from .losses import continuity_loss, discriminator_loss, generator_loss, pseudo_label_cross_entropy, segmentation_loss
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


def _per_iteration(run, iterations: int, device: torch.device) -> float:
    """Seconds per iteration of ``run(n)``, a loop of ``n`` updates: ``(t(n) - t(0)) / n`` after
    one warm-up run (layout probe, kernels). ``t(0)`` is what a loop costs besides its updates
    (building the networks, the forward pass for the final labels), which the per-iteration
    times of demo.py's progress lines leave out too."""
    run(1)

    def seconds(n: int) -> float:
        _sync(device)
        start = time.perf_counter()
        run(n)
        _sync(device)
        return time.perf_counter() - start

    fixed = seconds(0)
    return max(seconds(iterations) - fixed, 0.0) / iterations


def _s3net_seconds(form: str):
    def seconds(images, layers, iterations, device) -> float:
        # min_labels=0: the stop rule off, so every iteration runs (the model is rebuilt per call)
        seeds = list(range(len(images)))
        return _per_iteration(lambda n: S3Net(form=form, iterations=n, min_labels=0).optimise(images, seeds, device),
                              iterations, device)
    return seconds


def _self_train_seconds(build):
    def seconds(images, layers, iterations, device) -> float:
        model, x, loss = build(images, layers, device)
        return _per_iteration(lambda n: self_train(model, x, iterations=n, lr=0.1, momentum=0.9, loss=loss),
                              iterations, device)
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
    if args.method == "jigsawgan":
        return _jigsawgan_main(args, device)
    if args.method == "seggan":
        from .benchmark_seggan import main as seggan_main

        return seggan_main(args, device)
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
    if args.method == "kanezaki2018":  # how close the loop comes to the machine's matrix product rate
        gflop = kanezaki2018_gflop(image.shape[0] * image.shape[1], args.layers)
        result["network_gflop_per_iteration"] = gflop
        result["study_gflops"] = gflop / result["study_seconds_per_iteration"]
        result["machine_sgemm_gflops"] = sgemm_gflops(device)
    if args.reference:
        result["speedup_vs_reference"] = result["reference_seconds_per_iteration"] / result["study_seconds_per_iteration"]
        if args.authors_demo:  # 1.0: the reference is as fast as the published script
            result["reference_over_published_demo"] = (result["reference_seconds_per_iteration"]
                                                       / result["published_demo_seconds_per_iteration"])
        if result["study_cpu_allocator_tuned"]:  # how much of the gain is the allocator alone
            result["reference_with_tuned_allocator_seconds_per_iteration"] = time_reference_loop(image, args.layers, args.iterations, device)
    print_result(result, args.json)
    return 0


def kanezaki2018_gflop(pixels: int, layers: int, p: int = 100, q: int = 100) -> float:
    """Floating-point operations (GFLOP) of the convolutions in one forward and backward pass of
    the Kanezaki 2018 network (Sec. 2.1: 3x3 3 -> p, M - 1 times 3x3 p -> p, 1x1 p -> q): a
    multiply-add counts 2; the backward pass computes the weight gradients of all layers and the
    input gradients of all but the first (the image needs none)."""
    first, middle, last = 2 * pixels * 3 * 9 * p, 2 * pixels * p * p * 9 * (layers - 1), 2 * pixels * p * q
    return (first + middle + last + first + 2 * middle + 2 * last) / 1e9


def sgemm_gflops(device: torch.device, n: int = 4096) -> float:
    """The machine's float32 matrix product rate: an n x n product, the best of three."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n ** 3 / layout.measure({"sgemm": lambda: a @ b}, device)["sgemm"] / 1e9


def print_result(result: dict, as_json: bool) -> None:
    """A benchmark's measurements: JSON, or one aligned line each."""
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for k, v in result.items():
        print(f"{k:<54} {v:.3f}" if isinstance(v, float) else f"{k:<54} {v}")


# --------------------------------------------------------------------------------------------
# JigsawGAN: images per second of the two training stages (``--method jigsawgan``)

#: JigsawGAN's batch in both stages (the report and the authors' code)
JIGSAW_BATCH = 16


def jigsawgan_samples(data_root=None, n: int = 64, size: tuple[int, int] = (256, 256)):
    """The benchmark's images: ``(pre-training samples, their source, fine-tuning samples, their
    source)``. Pre-training: the first ``n`` Animals-90 photos when a copy is under ``data_root``,
    else ``n`` synthetic pets of ``size``; fine-tuning: the first ``n`` Oxford-IIIT Pet training
    images when present, else the synthetic pets (which have trimaps)."""
    from . import data

    pets = None

    def synthetic():
        nonlocal pets
        if pets is None:
            pets = list(data.load("synthetic_pets", n=n, size=size))
        return pets, f"synthetic_pets {size[1]}x{size[0]}"

    try:
        pre = list(data.load("animals90", root=data_root, limit=n)), "Animals-90"
    except data.DatasetNotFound:
        pre = synthetic()
    try:
        fine = list(data.load("oxford_pet", root=data_root, split="train", limit=n)), "Oxford-IIIT Pet train"
    except data.DatasetNotFound:
        fine = synthetic()
    return (*pre, *fine)


def _index_batches(n: int, rng: torch.Generator):
    """The study's batches, epoch after epoch: a seeded permutation of ``range(n)`` in 16s."""
    while True:
        yield from torch.randperm(n, generator=rng).split(JIGSAW_BATCH)


def _images_per_second(batches, step, count: int, device: torch.device) -> float:
    """Run ``step`` on one batch of ``batches`` (warm-up, not timed), then ``count`` batches
    timed; ``step(batch)`` returns how many images it trained on."""
    step(next(batches))
    _sync(device)
    images = 0
    start = time.perf_counter()
    for _ in range(count):
        images += step(next(batches))
    _sync(device)
    return images / (time.perf_counter() - start)


def time_study_pretraining(images: torch.Tensor, batches: int, device: torch.device) -> float:
    """Images per second of the study's pre-training step (the ``epoch`` of
    :func:`lib.methods.jigsawgan.pretrain`, corrected form, 9 tiles) on uint8 ``images``
    ``(N, 3, 64, 64)`` held in memory, as the study holds its data."""
    from .methods.jigsawgan import PretrainSetting, build_pretraining, to_input
    from .runtime import generator as seeded

    setting = PretrainSetting(form="corrected", tiles=9, epochs=1)
    g, d, perms = build_pretraining(setting, device)
    opt_g = torch.optim.Adam(g.parameters(), lr=setting.lr, betas=setting.betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=setting.lr, betas=setting.betas)
    rng = seeded("pretrain", setting.seed)

    def step(idx: torch.Tensor) -> int:  # the body of pretrain's epoch loop, line for line
        real = to_input(images[idx], "symmetric").to(device)
        z = torch.randn(len(idx), setting.latent, 1, 1, generator=rng).to(device)
        loss_d, parts_d = discriminator_loss(d, real, g(z), perms, setting.alpha, generator=rng)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        z = torch.randn(len(idx), setting.latent, 1, 1, generator=rng).to(device)
        loss_g, parts_g = generator_loss(d, g(z), perms, setting.beta, generator=rng)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        {"loss_d": loss_d.item(), "loss_g": loss_g.item(), **{"d_" + k: float(v) for k, v in parts_d.items()},
         **{"g_" + k: float(v) for k, v in parts_g.items()}}  # the row pretrain logs
        return len(idx)

    return _images_per_second(_index_batches(len(images), rng), step, batches, device)


def time_study_finetuning(images: torch.Tensor, masks: torch.Tensor, batches: int, device: torch.device) -> float:
    """Images per second of the study's fine-tuning step (the ``epoch`` of
    :func:`lib.methods.jigsawgan.finetune`, corrected form, trainable trunk): SegmentationNet,
    Adam 4e-4, cross-entropy, on uint8 ``images`` and int64 ``masks`` held in memory."""
    from .methods.jigsawgan import FinetuneSetting, to_input
    from .models.jigsawgan import SegmentationNet
    from .runtime import generator as seeded

    setting = FinetuneSetting(form="corrected", init="scratch")
    net = SegmentationNet(None, 3, softmax_output=False, generator=seeded("segmentation", setting.seed)).to(device)
    opt = torch.optim.Adam(net.trainable_parameters(), lr=setting.lr)
    rng = seeded("finetune", setting.seed)

    def step(idx: torch.Tensor) -> int:
        x = to_input(images[idx], "symmetric").to(device)
        y = masks[idx].to(device)
        loss = segmentation_loss(net(x), y, False)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()  # finetune logs each batch's loss
        return len(idx)

    return _images_per_second(_index_batches(len(images), rng), step, batches, device)


# ---- The benchmark's reference: the two training loops written the way the authors' code runs
# ---- them (kawaiiblitz/GAN_SelfSupervised @5a8e92f: pretrain.py's train_loop, pretrain_methods.py's
# ---- CustomImageDataset and shuffle_image, finetune.py's train_loop and OxfordIIITPetsAugmented).
# ---- Only for timing; the study never runs it.


def reference_shuffle_image(images: torch.Tensor, num_pieces: int, permutations, perm_indices=None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' ``shuffle_image``: per image a permutation (``np.random.randint``, or
    ``perm_indices[n]`` when given), then per tile a slice copied into a ``zeros_like`` output,
    tiles of ``H // side`` pixels both ways. Returns ``(shuffled, permutation indices)``."""
    n_images, _, h, _ = images.shape
    side = int(np.sqrt(num_pieces))
    piece = h // side
    out = torch.zeros_like(images)
    indices = []
    for n in range(n_images):
        image = images[n]
        k = np.random.randint(len(permutations)) if perm_indices is None else int(perm_indices[n])
        indices.append(k)
        for idx, piece_idx in enumerate(permutations[k]):
            row, col = piece_idx // side, piece_idx % side
            new_row, new_col = idx // side, idx % side
            out[n, :, new_row * piece: (new_row + 1) * piece, new_col * piece: (new_col + 1) * piece] = \
                image[:, row * piece: (row + 1) * piece, col * piece: (col + 1) * piece]
    return out, torch.tensor(indices)


class _ReferenceImages(torch.utils.data.Dataset):
    """The authors' ``CustomImageDataset`` with their pre-training transform: every fetch opens
    and decodes the file (``Image.open(...).convert('RGB')``), ``Resize((64, 64))`` (PIL
    bilinear), ``ToTensor`` and ``Normalize(0.5, 0.5)``."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        image = Image.open(self.paths[i]).convert("RGB").resize((64, 64), Image.BILINEAR)
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255)
        return (x - 0.5) / 0.5


class _ReferencePets(torch.utils.data.Dataset):
    """The authors' ``OxfordIIITPetsAugmented`` as finetune.py configures it: every fetch opens
    the image and its trimap, ``ToTensor`` both, resizes both nearest to 64 x 64 and maps the
    trimap's 1..3 to classes 0..2 (``tensor_trimap``)."""

    def __init__(self, pairs):
        self.pairs = list(pairs)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        from PIL import Image

        image_path, trimap_path = self.pairs[i]
        image = Image.open(image_path).convert("RGB")
        trimap = Image.open(trimap_path)
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255)
        t = torch.from_numpy(np.array(trimap))[None].float().div(255)
        x = F.interpolate(x[None], size=(64, 64), mode="nearest")[0]
        t = F.interpolate(t[None], size=(64, 64), mode="nearest")[0]
        return x * 2 - 1, (t * 255).round().long() - 1  # input range of the corrected form (no cost difference)


def _loader_batches(loader):
    while True:
        yield from loader


def time_reference_pretraining(paths, batches: int, device: torch.device) -> float:
    """Images per second of pretrain.py's train_loop (jigsaw, 9 pieces), with the study's G, D
    (corrected form: logits, hence BCE with logits) and permutations: a DataLoader(batch 16,
    shuffle) over :class:`_ReferenceImages`, the Python-loop :func:`reference_shuffle_image`,
    three D passes and two G-side passes per batch and the per-batch ``.item()`` statistics
    (their torchmetrics AUROC/F1/accuracy updates left out, which favours the reference)."""
    from .methods.jigsawgan import PretrainSetting, build_pretraining

    setting = PretrainSetting(form="corrected", tiles=9, epochs=1)
    generator, discriminator, perms = build_pretraining(setting, device)
    perms = perms.tolist()  # their permutations: a Python list
    torch.manual_seed(42)
    np.random.seed(42)
    loader = torch.utils.data.DataLoader(_ReferenceImages(paths), batch_size=JIGSAW_BATCH, shuffle=True)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=setting.lr)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=setting.lr)
    criterion, jigsaw_criterion = torch.nn.BCEWithLogitsLoss(), torch.nn.CrossEntropyLoss()
    alpha, beta, latent_dim = 1, 0.2, setting.latent

    def step(real_images: torch.Tensor) -> int:
        real_images = real_images.to(device)
        batch_size = real_images.size(0)
        optimizer_d.zero_grad()
        label_rf_real = torch.ones(batch_size, 1).to(device)
        pred_rf_real, _ = discriminator(real_images)
        pred_rf_real = pred_rf_real.view(-1, 1)
        loss_rf_real = criterion(pred_rf_real, label_rf_real)
        real_images_shuffled, label_jigsaw_real = reference_shuffle_image(real_images, 9, perms)
        real_images_shuffled = real_images_shuffled.to(device)
        label_jigsaw_real = label_jigsaw_real.to(device)
        _, pred_jigsaw_real = discriminator(real_images_shuffled)
        loss_jigsaw_real = jigsaw_criterion(pred_jigsaw_real, label_jigsaw_real)
        noise = torch.randn(batch_size, latent_dim, 1, 1).to(device)
        fake_images = generator(noise).detach()
        label_rf_fake = torch.zeros(batch_size, 1).to(device)
        pred_rf_fake, _ = discriminator(fake_images)
        pred_rf_fake = pred_rf_fake.view(-1, 1)
        loss_rf_fake_d = criterion(pred_rf_fake, label_rf_fake)
        loss_d = loss_rf_real + loss_rf_fake_d
        loss_d += alpha * loss_jigsaw_real
        loss_d.backward()
        optimizer_d.step()

        optimizer_g.zero_grad()
        noise = torch.randn(batch_size, latent_dim, 1, 1).to(device)
        fake_images = generator(noise)
        pred_rf_fake, _ = discriminator(fake_images)
        pred_rf_fake = pred_rf_fake.view(-1, 1)
        label_rf_real = torch.ones(batch_size, 1).to(device)
        loss_rf_fake_g = criterion(pred_rf_fake, label_rf_real)
        fake_images_shuffled, label_jigsaw_fake = reference_shuffle_image(fake_images, 9, perms)
        fake_images_shuffled = fake_images_shuffled.to(device)
        label_jigsaw_fake = label_jigsaw_fake.to(device)
        _, pred_jigsaw_fake = discriminator(fake_images_shuffled)
        loss_jigsaw_fake = jigsaw_criterion(pred_jigsaw_fake, label_jigsaw_fake)
        loss_g = loss_rf_fake_g
        loss_g += beta * loss_jigsaw_fake
        loss_g.backward()
        optimizer_g.step()
        with torch.no_grad():
            real_outputs, fake_outputs = pred_rf_real.squeeze(), pred_rf_fake.squeeze()
        torch.mean(real_outputs).item(), torch.mean(fake_outputs).item(), loss_d.item(), loss_g.item()
        return batch_size

    return _images_per_second(_loader_batches(loader), step, batches, device)


def time_reference_finetuning(pairs, batches: int, device: torch.device) -> float:
    """Images per second of finetune.py's train_loop with the study's SegmentationNet (fresh
    trunk, logits), Adam 4e-4 and CrossEntropyLoss, over a DataLoader(batch 16, shuffle) of
    :class:`_ReferencePets` (image and trimap files re-read every fetch)."""
    from .models.jigsawgan import SegmentationNet
    from .runtime import generator as seeded

    model = SegmentationNet(None, 3, softmax_output=False, generator=seeded("segmentation", 0)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-4)
    criterion = torch.nn.CrossEntropyLoss(reduction="mean")
    torch.manual_seed(42)
    loader = torch.utils.data.DataLoader(_ReferencePets(pairs), batch_size=JIGSAW_BATCH, shuffle=True)

    def step(batch) -> int:
        inputs, targets = batch
        optimizer.zero_grad()
        inputs = inputs.to(device)
        targets = targets.to(device)
        outputs = model(inputs)
        targets = targets.squeeze(dim=1)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        loss.item()
        return targets.size(0)

    return _images_per_second(_loader_batches(loader), step, batches, device)


def _write_reference_files(folder, pretrain_samples, finetune_samples):
    """The benchmark's images as the files the reference reads: JPEGs (quality 95), and for the
    fine-tuning set a trimap PNG per image holding 1..3, as Oxford-IIIT Pet's trimaps do."""
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    paths, pairs = [], []
    for i, s in enumerate(pretrain_samples):
        p = folder / f"pre{i:05d}.jpg"
        Image.fromarray(s.image).convert("RGB").save(p, quality=95)
        paths.append(p)
    for i, s in enumerate(finetune_samples):
        p, t = folder / f"pet{i:05d}.jpg", folder / f"pet{i:05d}.png"
        Image.fromarray(s.image).convert("RGB").save(p, quality=95)
        Image.fromarray((s.segmentations[0] + 1).astype(np.uint8)).save(t)
        pairs.append((p, t))
    return paths, pairs


def time_jigsawgan(pretrain_samples, finetune_samples, batches: int, device: torch.device) -> dict[str, float]:
    """Images per second of both JigsawGAN stages, the study's loops and the reference's, and
    the ratios study / reference. The reference runs first, with the default CPU allocator (as
    the authors' code does); the study's inputs are converted once, untimed (the study reads its
    data once: :func:`lib.data.tensors.to_tensors`)."""
    import tempfile

    from .data.tensors import to_tensors

    if batches < 1:
        raise ValueError(f"batches={batches}: time at least one batch")
    with tempfile.TemporaryDirectory() as tmp:
        paths, pairs = _write_reference_files(tmp, pretrain_samples, finetune_samples)
        reference_pre = time_reference_pretraining(paths, batches, device)
        reference_fine = time_reference_finetuning(pairs, batches, device)
    if device.type == "cpu":
        tune_cpu_allocator()  # as the runner does
    pre, _ = to_tensors(pretrain_samples, size=64, image_resize="bilinear")
    fine, masks = to_tensors(finetune_samples, size=64, image_resize="bilinear")
    study_pre = time_study_pretraining(pre, batches, device)
    study_fine = time_study_finetuning(fine, masks, batches, device)
    return {
        "study_pretrain_images_per_second": study_pre,
        "reference_pretrain_images_per_second": reference_pre,
        "pretrain_study_over_reference": study_pre / reference_pre,
        "study_finetune_images_per_second": study_fine,
        "reference_finetune_images_per_second": reference_fine,
        "finetune_study_over_reference": study_fine / reference_fine,
    }


def _jigsawgan_main(args: argparse.Namespace, device: torch.device) -> int:
    for option, given in (("--authors-demo", args.authors_demo), ("--estimate", args.estimate)):
        if given:
            raise ValueError(f"{option} is for the per-image loops, not --method jigsawgan")
    pre, pre_source, fine, fine_source = jigsawgan_samples(args.data_root, n=args.images)
    result = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "machine": layout.machine(device), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "method": "jigsawgan", "pretrain_images": f"{pre_source}, {len(pre)} images",
        "finetune_images": f"{fine_source}, {len(fine)} images", "batch": JIGSAW_BATCH, "timed_batches": args.batches,
    }
    result.update(time_jigsawgan(pre, fine, args.batches, device))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for k, v in result.items():
        if not k.endswith(("_per_second", "_over_reference")):
            print(f"{k:<20} {v}")
    print(f"\n{'images/s':<14}{'study':>10}{'reference':>12}{'study/ref':>11}")
    for stage in ("pretrain", "finetune"):
        print(f"{stage:<14}{result[f'study_{stage}_images_per_second']:>10.1f}"
              f"{result[f'reference_{stage}_images_per_second']:>12.1f}"
              f"{result[f'{stage}_study_over_reference']:>11.2f}")
    return 0
