"""SegGAN (Zhang et al., "SegGAN: semantic segmentation with generative adversarial network",
BigMM 2018): a GAN that learns to turn a segmentation mask into its image, then used as a loss
for DeepLab. No implementation was published: the paper is the whole specification, and every
choice it leaves open is a field of :class:`Setting` with a stated default.

Two stages, each trained for a number of iterations with a checkpoint every ``checkpoint_every``
(``lib/loops/epochs.py``: the "epochs" there are these chunks of iterations):

1. :func:`train_gan` (section III.A): G reads the one-hot ground-truth mask (and the image, the
   paper's input) and reconstructs the image; loss_G = 100 l_C + l_A (eq. 6), D learns real /
   reconstructed (eq. 1); Adam 1e-3 (0.9, 0.999, 1e-8), batch 8.
2. :func:`train_segmentation` (section III.A, eq. 2): G and D frozen, DeepLab trained with
   l = l_S + lambda1 l_C + lambda2 l_A (both 0.1), where G now reads DeepLab's softmax. The
   ``deeplab`` baseline is the same loop with l_S alone, from the same initial weights and the
   same batches (so lambda1 = lambda2 = 0 gives the baseline exactly).

Scores: one confusion matrix over the whole test split (FCN's pixel accuracy, mean class accuracy,
per-class and mean IoU; ``lib/metrics/confusion.py``), pixels labelled unknown / void ignored.
The image given to G with the mask lets G reconstruct the image without reading the mask;
:func:`mask_use` measures how much it reads it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..code_fingerprint import code_fingerprint
from ..data import Sample
from ..data.crops import IGNORE, Crops, center_crop, draw_crops, loader, shrunk
from ..loops.epochs import Stage, Training, fingerprint, train_epochs
from ..losses import ADVERSARIAL, adversarial_loss, content_loss, d_loss, one_hot_masks
from ..metrics.confusion import ConfusionMatrix
from ..models.seggan import BACKBONES, BATCHNORM, ImageDiscriminator, MaskToImage, segmentation_net
from ..runtime import generator as seeded

METHODS = ("deeplab", "seggan")
#: what G reads: the paper's mask and image, or the mask alone
GENERATOR_INPUTS = ("mask+image", "mask")


@dataclass(frozen=True)
class Setting:
    """One DeepLab or SegGAN run. Defaults: the paper's where it gives them (section III.A),
    otherwise this study's choice, said in the comment."""

    method: str = "seggan"  # "deeplab": l_S alone (the baseline); "seggan": eq. (2)
    generator_input: str = "mask+image"  # the paper's ("simultaneously ... p_seg and original image I"), or "mask"
    lambda_content: float = 0.1  # lambda1 of eq. (2)
    lambda_adversarial: float = 0.1  # lambda2 of eq. (2)
    seed: int = 0  # initial weights of every network, batches, dropout
    backbone: str = "resnet101"  # DeepLab's (the paper: DrSleep's DeepLab-ResNet, a ResNet-101)
    weights: str | None = None  # DeepLab's initial weights (see lib.models.seggan.segmentation_net)
    iterations: int = 20000  # stage 2 and the baseline (the paper: 20,000)
    gan_iterations: int = 20000  # stage 1 (the paper: 20,000)
    batch: int = 8  # both stages (the paper: 8)
    lr: float = 1e-3  # stage 2: "the standard Adam optimizer" (Adam's default step, 1e-3)
    gan_lr: float = 1e-3  # stage 1, G and D (the paper gives G's: 0.001; D's: the same, ours)
    betas: tuple[float, float] = (0.9, 0.999)  # the paper's (Adam's defaults)
    eps: float = 1e-8  # the paper's
    content_weight: float = 100.0  # eq. (6)
    adversarial: str = "minimax"  # eq. (5) as written; or "non-saturating" (see lib.losses.adversarial_loss)
    width: int = 64  # G's and D's first layer width (pix2pix's; the paper gives none)
    dropout: float = 0.5  # G's dropout (the paper's rate)
    crop: int = 240  # training crops (the paper: "random crop or resize", no size; see lib/data/crops.py)
    max_side: int | None = None  # images shrunk to this longer side first (None: as stored)
    batchnorm: str = "train"  # DeepLab's BatchNorm in training (the paper: silent): "train" or "frozen" (DrSleep's)

    def __post_init__(self):
        for name, value, allowed in (("method", self.method, METHODS), ("backbone", self.backbone, BACKBONES),
                                     ("generator_input", self.generator_input, GENERATOR_INPUTS),
                                     ("adversarial", self.adversarial, ADVERSARIAL),
                                     ("batchnorm", self.batchnorm, BATCHNORM)):
            if value not in allowed:
                raise ValueError(f"{name}={value!r}: use one of {', '.join(allowed)}")
        if self.crop % 16 or self.crop < 16:
            raise ValueError(f"crop={self.crop}: a multiple of 16 (G halves the size four times)")
        if min(self.iterations, self.gan_iterations, self.batch) < 1:
            raise ValueError(f"iterations, gan_iterations and batch must be >= 1 ({self})")

    @property
    def uses_gan(self) -> bool:
        return self.method == "seggan"

    @property
    def label(self) -> str:
        if not self.uses_gan:
            return f"deeplab-seed{self.seed}"
        return (f"seggan-{self.generator_input.replace('+', '_')}-c{self.lambda_content:g}"
                f"-a{self.lambda_adversarial:g}-seed{self.seed}")

    def gan_config(self) -> dict[str, Any]:
        """What stage 1 depends on."""
        keep = ("generator_input", "seed", "gan_iterations", "batch", "gan_lr", "betas", "eps", "content_weight",
                "adversarial", "width", "dropout", "crop", "max_side")
        return {k: getattr(self, k) for k in keep}

    def segmentation_config(self) -> dict[str, Any]:
        """What stage 2 (or the baseline) depends on, besides the GAN it uses."""
        gan_only = {"generator_input", "lambda_content", "lambda_adversarial", "gan_iterations", "gan_lr",
                    "content_weight", "adversarial", "width", "dropout"}
        return {f.name: getattr(self, f.name) for f in fields(self) if self.uses_gan or f.name not in gan_only}


@dataclass
class LabelledSet:
    """A dataset's training and test images, its class names and how captions name it."""

    name: str
    classes: tuple[str, ...]
    train: Sequence[Sample]
    test: Sequence[Sample]
    note: str = ""

    def fingerprint(self, part: str) -> str:
        """Content of an in-memory split (built-in and staged data); ids of a lazily read one."""
        samples = getattr(self, part)
        if isinstance(samples, list):
            return fingerprint(*[a for s in samples for a in (s.image, s.segmentations[0])])
        return fingerprint(np.frombuffer("\n".join(f"{samples.name}/{i}" for i in samples.ids).encode(), np.uint8))


def _workers(samples: Sequence[Sample], device: torch.device) -> int:
    """Loader processes: none for images already in memory; a few to read files for a GPU."""
    return 0 if isinstance(samples, list) or device.type == "cpu" else 4


def _batches(crops: Crops, rng: torch.Generator, n: int, batch: int) -> tuple[list, list[torch.Tensor]]:
    """``n`` iterations' crop keys and dropout seeds, drawn from ``rng`` iteration by iteration
    (so the draws do not depend on how iterations are grouped into checkpoints)."""
    keys, seeds = [], []
    for _ in range(n):
        keys.append(draw_crops(len(crops), batch, rng))
        seeds.append(torch.randint(0, 2**62, (1,), generator=rng)[0])
    return keys, seeds


@contextlib.contextmanager
def _seeded_dropout(seed: torch.Tensor, device: torch.device) -> Iterator[None]:
    """Dropout layers in this block draw from ``seed`` (taken from the checkpointed generator), so
    a resumed run drops the same units; the global random state is restored afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        yield


def _symmetric(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as G's and D's input and target range [-1, 1]."""
    return images.float() / 127.5 - 1


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _file_digest(weights: str | None) -> str | None:
    """The SHA-256 of a weights file (so another file at the same path is not mistaken for it)."""
    from ..data.base import file_digest

    path = Path(weights).expanduser() if weights else None
    return file_digest(path) if path is not None and path.is_file() else None


def _chunks(iterations: int, every: int, e: int) -> range:
    """The iterations (1-based) of checkpoint chunk ``e``."""
    return range((e - 1) * every + 1, min(e * every, iterations) + 1)


# --------------------------------------------------------------------------------------------
# Stage 1: the mask-to-image GAN


@dataclass
class GAN:
    """A trained G and D (stage 1) and what their training logged."""

    setting: Setting
    generator: MaskToImage
    discriminator: ImageDiscriminator
    log: list[dict[str, float]]
    folder: Path  # its stage's cache folder (parameters, data and code)
    code: str = ""  # the fingerprint of stage 1's code


def build_gan(s: Setting, classes: int, device: torch.device) -> tuple[MaskToImage, ImageDiscriminator]:
    g = MaskToImage(classes, s.generator_input == "mask+image", s.width, s.dropout, generator=seeded("G", s.seed))
    d = ImageDiscriminator(s.width, generator=seeded("D", s.seed))
    return g.to(device), d.to(device)


def gan_step(g: MaskToImage, d: ImageDiscriminator, opt_g, opt_d, images: torch.Tensor, labels: torch.Tensor,
             s: Setting, dropout_seed: torch.Tensor) -> dict[str, float]:
    """One stage-1 iteration on a batch (uint8 images, int64 labels with IGNORE): D's step on
    eq. (1), then G's on eq. (6); returns the batch's losses."""
    x = _symmetric(images)
    p = one_hot_masks(labels, g.classes, IGNORE)
    with _seeded_dropout(dropout_seed, images.device):
        fake = g(p, x if g.with_image else None)
    loss_d = d_loss(d(x), d(fake.detach()))  # eq. (1): D's side
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    l_c, l_a = content_loss(fake, x), adversarial_loss(d(fake), s.adversarial)
    loss_g = s.content_weight * l_c + l_a  # eq. (6)
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "content": l_c.item(), "adversarial": l_a.item()}


def train_gan(data: LabelledSet, s: Setting, cache: str | Path, device: torch.device, checkpoint_every: int = 1000,
              progress: bool = False) -> GAN:
    """Stage 1 on ``data.train`` (cached under ``cache/seggan/gan``: read back when finished,
    resumed after the last checkpoint when interrupted)."""
    config = {"stage": "gan", **s.gan_config(), "classes": len(data.classes), "data": data.fingerprint("train"),
              "code": code_fingerprint(train_gan)}
    stage = Stage(cache, "seggan/gan", f"{s.generator_input.replace('+', '_')}-seed{s.seed}", config)
    g, d = build_gan(s, len(data.classes), device)
    done = stage.read("final.pt")
    if done is not None:
        g.load_state_dict(done[0]["G"])
        d.load_state_dict(done[0]["D"])
        return GAN(s, g, d, done[0]["log"], stage.folder, config["code"])
    opt_g = torch.optim.Adam(g.parameters(), lr=s.gan_lr, betas=s.betas, eps=s.eps, fused=True)
    opt_d = torch.optim.Adam(d.parameters(), lr=s.gan_lr, betas=s.betas, eps=s.eps, fused=True)
    rng = seeded("seggan gan", s.seed)
    training = Training({"G": g, "D": d}, {"G": opt_g, "D": opt_d}, rng)
    crops = Crops(data.train, s.crop, s.max_side)

    def chunk(e: int) -> dict[str, float]:
        its = _chunks(s.gan_iterations, checkpoint_every, e)
        keys, seeds = _batches(crops, rng, len(its), s.batch)
        batches = loader(crops, keys, _workers(data.train, device))
        rows = [gan_step(g, d, opt_g, opt_d, images.to(device), labels.to(device), s, seed)
                for (images, labels), seed in zip(batches, seeds)]
        return {"iteration": its[-1], **_mean(rows)}

    epochs = math.ceil(s.gan_iterations / checkpoint_every)
    train_epochs(stage.folder, training, epochs, chunk, {**config, "checkpoint_every": checkpoint_every},
                 progress=progress, desc=f"GAN {s.generator_input} seed {s.seed}")
    stage.write("final.pt", {"G": g.state_dict(), "D": d.state_dict(), "log": training.log})
    stage.finish()
    return GAN(s, g, d, training.log, stage.folder, config["code"])


def _test_crops(data: LabelledSet, s: Setting, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Central crops of the first ``n`` test images (all: None): uint8 images, int64 labels."""
    pairs = [center_crop(*shrunk(sample, s.max_side), s.crop) for sample in data.test[:n]]
    images = torch.from_numpy(np.stack([np.ascontiguousarray(i) for i, _ in pairs])).permute(0, 3, 1, 2)
    return images, torch.from_numpy(np.stack([lab for _, lab in pairs])).long()


@torch.no_grad()
def reconstruct(gan: GAN, images: torch.Tensor, masks: torch.Tensor, classes: int) -> torch.Tensor:
    """G's images (uint8 (N, 3, H, W)) from ``masks`` (label maps) and, for the paper's G, the images."""
    g = gan.generator.eval()
    device = next(g.parameters()).device
    x = _symmetric(images).to(device)
    out = g(one_hot_masks(masks.to(device), classes, IGNORE), x if g.with_image else None)
    return ((out.clamp(-1, 1) + 1) * 127.5).round().byte().cpu()


@torch.no_grad()
def mask_use(gan: GAN, data: LabelledSet, batch: int = 8) -> dict[str, float]:
    """How much G reads the mask: its content loss (eq. 4, images in [-1, 1]) on central test
    crops given the true masks, another image's mask (the masks rolled by one over the split), and
    no mask (all zeros). A G that ignores the mask scores the same three times."""
    images, labels = _test_crops(data, gan.setting)
    g = gan.generator.eval()
    device = next(g.parameters()).device
    given = {"true_mask": labels, "shuffled_mask": labels.roll(1, 0),  # image k gets image k-1's mask
             "no_mask": torch.full_like(labels, IGNORE)}
    sums = dict.fromkeys(given, 0.0)
    for i in range(0, len(images), batch):
        x = _symmetric(images[i: i + batch]).to(device)
        for name, masks in given.items():
            p = one_hot_masks(masks[i: i + batch].to(device), len(data.classes), IGNORE)
            sums[name] += content_loss(g(p, x if g.with_image else None), x).item() * len(x)
    out = {f"content_{k}": v / len(images) for k, v in sums.items()}
    if len(images) < 2:
        out["content_shuffled_mask"] = math.nan  # one image: no other image's mask to give
    out["shuffled_over_true"] = out["content_shuffled_mask"] / out["content_true_mask"]
    return out


# --------------------------------------------------------------------------------------------
# Stage 2: DeepLab trained with the frozen GAN as a loss (and the baseline without it)


def segmentation_step(net: torch.nn.Module, opt, images: torch.Tensor, labels: torch.Tensor, s: Setting,
                      gan: "GAN | None", dropout_seed: torch.Tensor) -> dict[str, float]:
    """One iteration of DeepLab on a batch: eq. (2) with the frozen ``gan``, or l_S alone."""
    with _seeded_dropout(dropout_seed, images.device):  # DeepLab's head has a dropout layer
        logits = net(images.float() / 255)
    l_s = F.cross_entropy(logits, labels, ignore_index=IGNORE)  # eq. (3)
    row, loss = {"segmentation": l_s.item()}, l_s
    if gan is not None:
        g, d = gan.generator, gan.discriminator
        x = _symmetric(images)
        fake = g(logits.softmax(1), x if g.with_image else None)  # G reads DeepLab's p_seg
        logit = d(fake)
        l_c, l_a = content_loss(fake, x), adversarial_loss(logit, s.adversarial)
        loss = l_s + s.lambda_content * l_c + s.lambda_adversarial * l_a  # eq. (2)
        # the minimax l_A has no floor against a frozen D: the logit shows whether DeepLab games it
        row.update(content=l_c.item(), adversarial=l_a.item(), d_logit=logit.mean().item())
    opt.zero_grad()
    loss.backward()
    opt.step()
    return {**row, "loss": loss.item()}


def freeze(gan: "GAN") -> None:
    """Stage 2's GAN: evaluation mode and no gradient, so no parameter, running statistic or
    dropout changes."""
    for net in (gan.generator, gan.discriminator):
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)


def train_segmentation(data: LabelledSet, s: Setting, gan: GAN | None, cache: str | Path, device: torch.device,
                       checkpoint_every: int = 1000, progress: bool = False, keep: int = 6) -> dict[str, Any]:
    """Train DeepLab on ``data.train`` with eq. (2) (``seggan``, given the stage-1 ``gan``) or l_S
    alone (``deeplab``), then score ``data.test``. Cached under ``cache/seggan/segmentation``;
    returns ``{"log", "scores", "predictions", "weights_note", "seconds"}``."""
    if (gan is None) == s.uses_gan:
        raise ValueError(f"{s.label}: a stage-1 GAN is needed exactly for method 'seggan'")
    config = {"stage": "segmentation", **s.segmentation_config(), "classes": list(data.classes),
              "data": data.fingerprint("train"), "test": data.fingerprint("test"),
              "gan": gan.folder.name if gan is not None else None, "weights_file": _file_digest(s.weights),
              "code": code_fingerprint(train_segmentation)}
    stage = Stage(cache, "seggan/segmentation", f"{data.name}-{s.label}", config)
    done = stage.read("result.json", "predictions.npz")
    if done is not None:
        return {**done[0], "predictions": [done[1][str(k)] for k in range(len(done[1]))]}
    net = segmentation_net(len(data.classes), s.backbone, s.weights, generator=seeded("deeplab", s.seed),
                           batchnorm=s.batchnorm).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr, betas=s.betas, eps=s.eps, fused=True)  # one kernel per step
    rng = seeded("seggan segmentation", s.seed)  # the same batches for the baseline and SegGAN
    training = Training({"net": net}, {"net": opt}, rng)
    crops = Crops(data.train, s.crop, s.max_side)
    if gan is not None:
        freeze(gan)

    def chunk(e: int) -> dict[str, float]:
        its = _chunks(s.iterations, checkpoint_every, e)
        keys, seeds = _batches(crops, rng, len(its), s.batch)
        batches = loader(crops, keys, _workers(data.train, device))
        rows = [segmentation_step(net, opt, images.to(device), labels.to(device), s, gan, seed)
                for (images, labels), seed in zip(batches, seeds)]
        return {"iteration": its[-1], **_mean(rows)}

    epochs = math.ceil(s.iterations / checkpoint_every)
    train_epochs(stage.folder, training, epochs, chunk, {**config, "checkpoint_every": checkpoint_every},
                 progress=progress, desc=s.label)
    scores, predictions = evaluate(net, data, s.max_side, keep=keep)
    code = code_fingerprint(train_gan, train_segmentation) if gan is not None else config["code"]
    result = {"setting": asdict(s), "log": training.log, "scores": scores, "weights_note": net.weights_note,
              "seconds": float(sum(r["seconds"] for r in training.log)), "train_images": len(data.train),
              "test_images": len(data.test), "code": code}
    stage.write("predictions.npz", {str(k): p for k, p in enumerate(predictions)})
    stage.write("result.json", result)
    stage.finish()
    return {**result, "predictions": predictions}


@torch.no_grad()
def evaluate(net: torch.nn.Module, data: LabelledSet, max_side: int | None, keep: int = 6,
             batch: int = 8) -> tuple[dict[str, float], list[np.ndarray]]:
    """DeepLab alone on every test image, whole (after ``max_side``), as the paper tests; one
    confusion matrix over the split, ignored labels dropped. Returns the scores (pixel accuracy,
    class accuracy, mean IoU, ``iou_<class>``) and the label maps of the first ``keep`` images."""
    net.eval()
    device = next(net.parameters()).device
    matrix = ConfusionMatrix(len(data.classes), data.classes, ignore_index=IGNORE)
    kept: list[np.ndarray] = []
    pending: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray, int]]] = {}

    def flush(items):
        images = torch.from_numpy(np.stack([i for i, _, _ in items])).permute(0, 3, 1, 2).to(device)
        pred = net(images.float() / 255).argmax(1)
        matrix.update(pred, torch.from_numpy(np.stack([lab for _, lab, _ in items])).to(device))
        for (_, _, k), p in zip(items, pred.cpu().numpy().astype(np.uint8)):
            if k < keep:
                kept.append((k, p))

    for k, sample in enumerate(data.test):  # images of one size go through together
        image, labels = shrunk(sample, max_side)
        group = pending.setdefault(labels.shape, [])
        group.append((image, labels, k))
        if len(group) == batch:
            flush(pending.pop(labels.shape))
    for items in pending.values():
        flush(items)
    net.train()
    s = matrix.scores()
    scores = {"pixel_accuracy": s["pixel_accuracy"], "class_accuracy": s["class_accuracy"],
              "mean_iou": s["mean_iou"], **{f"iou_{c}": v for c, v in s["iou"].items()}}
    return {k: float(v) for k, v in scores.items()}, [p for _, p in sorted(kept, key=lambda t: t[0])]


# --------------------------------------------------------------------------------------------
# Runs: every setting on one dataset, GANs trained once and shared


@dataclass
class Experiment:
    """The runs of one dataset: the runs table (one row per setting, typed columns), the trained
    GANs by (generator input, seed), each run's result, and the GANs' mask-use measurements."""

    data: LabelledSet
    runs: Any
    gans: dict[tuple[str, int], GAN] = field(default_factory=dict)
    results: dict[Setting, dict[str, Any]] = field(default_factory=dict)
    mask_use: Any = None


def run(data: LabelledSet, settings: Sequence[Setting], cache: str | Path, device: torch.device,
        checkpoint_every: int = 1000, progress: bool = False) -> Experiment:
    """Every setting on ``data`` (each stage-1 GAN trained once, shared by every SegGAN run that
    needs it); see :class:`Experiment`."""
    import pandas as pd

    gans: dict[tuple[str, int], GAN] = {}
    rows, results = [], {}
    for s in settings:
        gan = None
        if s.uses_gan:
            key = (s.generator_input, s.seed)
            if key not in gans:
                gans[key] = train_gan(data, s, cache, device, checkpoint_every, progress)
            elif gans[key].setting.gan_config() != s.gan_config():
                raise ValueError(f"two stage-1 settings for {key} in one experiment")
            gan = gans[key]
        result = train_segmentation(data, s, gan, cache, device, checkpoint_every, progress)
        results[s] = result
        rows.append({"dataset": data.name, **row_keys(s), "seed": s.seed, "iterations": s.iterations,
                     "train_images": result["train_images"], "test_images": result["test_images"],
                     **result["scores"], "seconds": result["seconds"], "code": result["code"]})
    use = [{"dataset": data.name, "generator_input": gi, "seed": seed, **mask_use(g, data)}
           for (gi, seed), g in gans.items()]
    return Experiment(data, pd.DataFrame(rows), gans, results, pd.DataFrame(use))


def row_keys(s: Setting) -> dict[str, Any]:
    """How a run is named in tables: method, and for SegGAN its generator input and lambdas
    (blank for the baseline, which has none)."""
    gan = s.uses_gan
    return {"method": s.method, "generator_input": s.generator_input if gan else None,
            "lambda_content": s.lambda_content if gan else np.nan,
            "lambda_adversarial": s.lambda_adversarial if gan else np.nan}


def model_label(row: Mapping[str, Any]) -> str:
    """'DeepLab' or 'SegGAN (mask+image, 0.1 / 0.1)'."""
    if row["method"] == "deeplab":
        return "DeepLab"
    return f"SegGAN ({row['generator_input']}, {row['lambda_content']:g} / {row['lambda_adversarial']:g})"


SUMMARY = ("class_accuracy", "pixel_accuracy", "mean_iou")


def summary_table(runs, comparable: bool = False):
    """Table II's columns (class accuracy, pixel accuracy, mean IoU, in %): mean and spread over
    seeds per dataset and configuration; the paper's number beside ours where it reports one for
    the row's dataset and configuration (Table II; Table I's mIoU on VOC), and ``diff`` only when
    ``comparable``: the paper's data, iterations and network."""
    from ..reported import paper_number
    from ..tables import seed_summary, with_paper_columns

    runs = runs.copy()
    for m in SUMMARY:
        runs[m] = runs[m] * 100
    keep = ["model", "dataset", "method", "generator_input", "lambda_content", "lambda_adversarial", "seed",
            *SUMMARY, "seconds"]
    summary = seed_summary(runs[keep], [*SUMMARY, "seconds"])

    def paper(row, metric):
        return paper_number("seggan", row, row["dataset"], metric)

    return with_paper_columns(summary, SUMMARY, paper, comparable)


def per_class_table(runs, classes: Sequence[str], paper_dataset: str | None = None):
    """Table I's layout: per-class IoU and mean IoU in %, mean over seeds, one row per
    configuration, with the paper's rows (``paper: ...``) below when ``paper_dataset`` is set."""
    import pandas as pd

    from ..reported import paper_number

    metrics = [f"iou_{c}" for c in classes] + ["mean_iou"]
    ours = runs.groupby("model", sort=False)[metrics].mean() * 100
    ours.insert(0, "seeds", runs.groupby("model", sort=False)["seed"].nunique())
    ours.insert(0, "source", "ours")
    if paper_dataset is None:
        return ours.reset_index()
    rows = []
    for method, gen in (("deeplab", None), ("seggan", "mask+image")):
        key = {"method": method, "generator_input": gen, "lambda_content": 0.1 if gen else np.nan,
               "lambda_adversarial": 0.1 if gen else np.nan}
        rows.append({"model": model_label({**key, "lambda_content": 0.1, "lambda_adversarial": 0.1}),
                     "source": "paper", "seeds": np.nan,
                     **{m: paper_number("seggan", key, paper_dataset, m) for m in metrics}})
    return pd.concat([ours.reset_index(), pd.DataFrame(rows)], ignore_index=True)


def crop_for(crop: int | Mapping[str, int], dataset: str) -> int:
    """The training crop of ``dataset``: ``crop`` itself, or its entry for the dataset (the
    ``paper`` profile gives Stanford Background 240, the largest multiple of 16 within its
    320 x 240 images, and VOC 320, the multiple of 16 nearest DeepLab's own 321 x 321 crops)."""
    if isinstance(crop, Mapping):
        if dataset not in crop:
            raise ValueError(f"crop={dict(crop)!r} gives no crop for {dataset}: add '{dataset}: <side>'")
        return crop[dataset]
    return crop


def for_dataset(settings: Sequence[Setting], dataset: str, weights: Mapping[str, str],
                crop: int | Mapping[str, int]) -> list[Setting]:
    """``settings`` as they run on ``dataset``: DeepLab's initial weights for it (none when
    ``weights`` names none) and its crop (:func:`crop_for`)."""
    return [replace(s, weights=weights.get(dataset), crop=crop_for(crop, dataset)) for s in settings]


def settings_grid(base: Setting, seeds: Sequence[int], generator_inputs: Sequence[str],
                  lambdas: Sequence[tuple[float, float]] | None = None, baseline: bool = True) -> list[Setting]:
    """The DeepLab baseline per seed, then SegGAN per generator input, (lambda1, lambda2) and seed;
    ``lambdas=None``: ``base``'s own lambda1 and lambda2 (never a default that would override them)."""
    out = [replace(base, method="deeplab", seed=seed) for seed in seeds] if baseline else []
    if lambdas is None:
        lambdas = [(base.lambda_content, base.lambda_adversarial)]
    for gi in generator_inputs:
        for l_c, l_a in lambdas:
            out += [replace(base, method="seggan", generator_input=gi, lambda_content=l_c, lambda_adversarial=l_a,
                            seed=seed) for seed in seeds]
    return out


# --------------------------------------------------------------------------------------------
# Datasets, figures and logs for the notebooks


def dataset_classes(name: str) -> tuple[str, ...]:
    """The class names of a SegGAN dataset, in label order."""
    from ..data.stanford_background import CLASSES as STANFORD
    from ..data.voc2012_aug import CLASSES as VOC
    from ..metrics.confusion import PET_TRIMAP_CLASSES

    known = {"synthetic_pets": PET_TRIMAP_CLASSES, "oxford_pet": PET_TRIMAP_CLASSES, "stanford_background": STANFORD,
             "voc2012": VOC}
    if name not in known:
        raise ValueError(f"no SegGAN dataset {name!r}; known: {', '.join(known)}")
    return known[name]


def labelled_sets(sets: Mapping[str, Sequence[Sample]], notes: Mapping[str, str]) -> dict[str, LabelledSet]:
    """``{dataset: LabelledSet}`` from ``study.scene_sets``' ``<dataset>/train`` and ``/test``."""
    names = dict.fromkeys(k.split("/")[0] for k in sets)
    return {n: LabelledSet(n, dataset_classes(n), sets[f"{n}/train"], sets[f"{n}/test"], notes.get(n, ""))
            for n in names}


def masks_figure(exp: Experiment, seed: int, n: int = 4):
    """Figs. 2 and 3: test images, ground truth, and each configuration's prediction (``seed``)."""
    from .. import plots

    chosen = [(s, r) for s, r in exp.results.items() if s.seed == seed]
    rows = []
    for i in range(min(n, len(exp.data.test), *(len(r["predictions"]) for _, r in chosen))):
        image, labels = shrunk(exp.data.test[i], chosen[0][0].max_side)
        panels = [("image", image), ("ground truth", labels)]
        panels += [(model_label(row_keys(s)).replace(" (", "\n("), r["predictions"][i]) for s, r in chosen]
        rows.append((f"test {i}", panels))
    return plots.image_rows(rows, width=1.6, classes=len(exp.data.classes))


def reconstruction_figure(exp: Experiment, seed: int, n: int = 4):
    """What G makes of a test crop's true mask, of another image's mask, and of no mask."""
    from .. import plots

    rows = []
    for (gi, s), gan in exp.gans.items():
        if s != seed:
            continue
        images, labels = _test_crops(exp.data, gan.setting, n)
        shuffled = labels.roll(1, 0)
        classes = len(exp.data.classes)
        outs = {"true mask": reconstruct(gan, images, labels, classes),
                "another image's mask": reconstruct(gan, images, shuffled, classes),
                "no mask": reconstruct(gan, images, torch.full_like(labels, IGNORE), classes)}
        for i in range(len(images)):
            panels = [("image", images[i].permute(1, 2, 0).numpy()), ("mask", labels[i].numpy())]
            panels += [(f"G: {k}", v[i].permute(1, 2, 0).numpy()) for k, v in outs.items()]
            rows.append((f"G reads {gi}", panels))
    return plots.image_rows(rows, width=1.6, classes=len(exp.data.classes))


def gan_log(exp: Experiment):
    """Stage 1, one row per GAN and checkpoint."""
    import pandas as pd

    return pd.DataFrame([{"model": f"G reads {gi}", "seed": seed, **row}
                         for (gi, seed), gan in exp.gans.items() for row in gan.log])


def segmentation_log(exp: Experiment):
    """Stage 2 and the baseline, one row per run and checkpoint."""
    import pandas as pd

    return pd.DataFrame([{"model": model_label(row_keys(s)), "seed": s.seed, **row}
                         for s, r in exp.results.items() for row in r["log"]])


def mask_use_table(use):
    """:func:`mask_use`'s measurements per generator input: mean and std over seeds."""
    from ..tables import seed_summary

    metrics = [c for c in use.columns if c not in ("dataset", "generator_input", "seed")]
    return seed_summary(use, metrics)


def lambda_table(runs, metric: str = "mean_iou"):
    """SegGAN against DeepLab per (generator input, lambda1, lambda2), in %: ``metric``'s mean over
    seeds and the paired difference to the DeepLab run of the same seed (mean and std over seeds).
    lambda1 = lambda2 = 0 is DeepLab itself (eq. 2 reduces to l_S; the runs are identical)."""
    import pandas as pd

    base = runs[runs.method == "deeplab"].set_index(["dataset", "seed"])[metric]
    gan = runs[runs.method == "seggan"].copy()
    gan["diff"] = [100 * (r[metric] - base[(r["dataset"], r["seed"])]) for _, r in gan.iterrows()]
    gan[metric] = gan[metric] * 100
    rows = []
    for inp in gan.generator_input.unique():
        zero = runs[runs.method == "deeplab"].assign(generator_input=inp, lambda_content=0.0,
                                                     lambda_adversarial=0.0, diff=0.0)
        zero[metric] = zero[metric] * 100
        rows.append(zero)
    both = pd.concat([gan, *rows], ignore_index=True)
    g = both.groupby(["dataset", "generator_input", "lambda_content", "lambda_adversarial"])
    out = g[metric].mean().to_frame()
    out[f"{metric}_std"] = g[metric].std(ddof=1)
    out[f"{metric}_minus_deeplab"] = g["diff"].mean()
    out[f"{metric}_minus_deeplab_std"] = g["diff"].std(ddof=1)
    out["seeds"] = g["seed"].nunique()
    return out.reset_index()


def weights_note(exp: Experiment) -> str:
    """Where DeepLab's initial weights came from in ``exp``'s runs, for captions."""
    return "DeepLab's initial weights: " + "; ".join(sorted({r["weights_note"] for r in exp.results.values()}))
