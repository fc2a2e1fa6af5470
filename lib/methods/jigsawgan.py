"""JigsawGAN (Peña Alarcón 2024, UCL report): GAN pre-training with a jigsaw pretext, then
fine-tuning of the discriminator's trunk for three-class pet segmentation.

Two stages, each trained over a dataset for epochs with a checkpoint per epoch
(``lib/loops/epochs.py``):

1. :func:`pretrain`: a DCGAN generator G and a discriminator D with a real/fake head and a
   jigsaw head (report section 2, ``L_D`` and ``L_G``) on unlabelled images; D also learns the
   permutation of shuffled real images (weight ``alpha``), G is also trained to make its
   shuffled fakes' permutation predictable (weight ``beta``). ``tiles = 0`` is the GAN without
   jigsaw.
2. :func:`finetune`: D's trunk (or a fresh one: the baseline CNN) with a transposed-convolution
   decoder to three-class logits (pet, background, border), its trunk trainable or frozen, for
   20 epochs on the authors' 80 % of Oxford-IIIT Pet's trainval; the weights of the epoch with
   the lowest validation loss are kept, as the authors' ``finetune.py`` keeps them, and the
   report's Table 1 ("test performance") is what their ``test()`` makes of those weights on the
   official test split (batches of 21 in their shuffled order: :func:`authors_test_batches`).
   Both that epoch and the last are scored, on every split.

Two forms, every table says which (``FORMS``):

- ``code``: as the authors' code (kawaiiblitz/GAN_SelfSupervised @5a8e92f) runs it: both heads
  of D end in a sigmoid and the jigsaw cross-entropy is applied to those sigmoid outputs (its
  loss cannot fall below :func:`lib.losses.code_form_jigsaw_floor`); a 30-way jigsaw head even
  for 4 tiles (24 permutations); fine-tuning applies the cross-entropy to a softmax output
  (a double softmax) and feeds images in [0, 1] to a trunk pre-trained on [-1, 1], image and
  trimap resized by torch's nearest (``lib/data/tensors.py``); a frozen trunk's BatchNorm
  statistics keep updating; Fig. 3's fractions are the authors' single nested draw (seed 42).
- ``corrected``: logits into every loss, a head with one output per permutation, the same
  [-1, 1] range in both stages, images resized bilinearly (masks by PIL's nearest), a frozen
  trunk frozen whole (its statistics fixed: the report says the representation is not
  altered), and one nested draw of the fractions per seed.

Both use the authors' 80 / 20 split of trainval (``lib/data/oxford_pet.py``).

One pre-trained D (per form, tiles, seed and data) is shared by every fine-tuning that needs
it: it is cached on disk under its configuration's hash and never recomputed.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..code_fingerprint import code_fingerprint
from ..jigsaw import hamming_summary, permutation_set, shuffle_tiles
from ..loops.epochs import Stage, Training, fingerprint, train_epochs
from ..losses import discriminator_loss, generator_loss, segmentation_loss
from ..metrics.confusion import ConfusionMatrix, ReportProtocol
from ..models.jigsawgan import Discriminator, Generator, SegmentationNet
from ..runtime import generator as seeded

#: what :func:`score` returns for a split, in the runs table's column order
SCORES = ("loss", "pixel_accuracy", "class_accuracy", "mean_iou", "iou_pet", "iou_background", "iou_border",
          "report_pixel_accuracy", "report_iou")
#: the three fine-tuning classes, in the order of the authors' TrimapClasses (trimap value - 1)
CLASSES = ("pet", "background", "border")
#: images per batch in both stages (the report and the authors' code)
BATCH = 16


@dataclass(frozen=True)
class Form:
    """What differs between the authors' code and the corrected runs."""

    name: str
    sigmoid_heads: bool  # D's heads end in a sigmoid (the CE then sees probabilities)
    jigsaw_head: int | None  # outputs of the jigsaw head; None: one per permutation
    softmax_output: bool  # the segmentation net ends in a softmax fed to the CE
    finetune_range: str  # "unit" ([0, 1]) or "symmetric" ([-1, 1]) input in fine-tuning
    finetune_resize: str  # fine-tuning images: "nearest" (torch's, lib/data/tensors.py) or "bilinear"
    fractions: str  # Fig. 3's training fractions: "authors" (one nested draw for every seed) or "seeded"
    trunk_statistics: str  # a frozen trunk's BatchNorm statistics: "update" (drift) or "fixed"


FORMS = {
    "code": Form("code", sigmoid_heads=True, jigsaw_head=30, softmax_output=True, finetune_range="unit",
                 finetune_resize="nearest", fractions="authors", trunk_statistics="update"),
    "corrected": Form("corrected", sigmoid_heads=False, jigsaw_head=None, softmax_output=False,
                      finetune_range="symmetric", finetune_resize="bilinear", fractions="seeded",
                      trunk_statistics="fixed"),
}


def form(name: str) -> Form:
    if name not in FORMS:
        raise ValueError(f"form={name!r}: use {' or '.join(map(repr, FORMS))}")
    return FORMS[name]


def to_input(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """uint8 images (N, 3, H, W) as float network input in [0, 1] or [-1, 1]."""
    x = images.float() / 255
    return x * 2 - 1 if value_range == "symmetric" else x


# --------------------------------------------------------------------------------------------
# Stage 1: pre-training


@dataclass(frozen=True)
class PretrainSetting:
    """Pre-training hyperparameters: the report's (200 epochs, Adam 2e-4, 64 x 64) and, where it
    is silent, the authors' code's (batch 16, Adam's default betas, alpha 1, beta 0.2, latent 100)."""

    form: str = "corrected"
    tiles: int = 9  # 0: the GAN without jigsaw
    seed: int = 0
    epochs: int = 200
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    alpha: float = 1.0  # weight of D's jigsaw loss
    beta: float = 0.2  # weight of G's jigsaw loss
    latent: int = 100
    permutations: int = 30  # for 9 tiles; 4 tiles have 4! = 24

    @property
    def label(self) -> str:
        return f"{self.form}-{'gan' if not self.tiles else f'jigsaw{self.tiles}'}-seed{self.seed}"


@dataclass
class Pretrained:
    """A pre-trained discriminator and what its training logged."""

    setting: PretrainSetting
    discriminator: Discriminator
    log: list[dict[str, float]]
    permutations: torch.Tensor | None
    hamming: dict[str, float] = field(default_factory=dict)
    samples: np.ndarray | None = None  # (16, 64, 64, 3) uint8 images drawn from G at the end
    stage: str = ""  # its cache folder's name (parameters, data and code): what a fine-tuning names
    code: str = ""  # the fingerprint of the pre-training's code


def build_pretraining(setting: PretrainSetting, device: torch.device):
    """G, D and the permutation set of ``setting``, initialised from its seed."""
    f = form(setting.form)
    perms = permutation_set(setting.tiles, setting.permutations, seed=setting.seed) if setting.tiles else None
    classes = f.jigsaw_head or (len(perms) if perms is not None else setting.permutations)
    g = Generator(setting.latent, generator=seeded("G", setting.seed)).to(device)
    d = Discriminator(classes, sigmoid_heads=f.sigmoid_heads, generator=seeded("D", setting.seed)).to(device)
    return g, d, (perms.to(device) if perms is not None else None)


def pretrain(train: torch.Tensor, held_out: torch.Tensor, setting: PretrainSetting, cache: str | Path,
             device: torch.device, progress: bool = False) -> Pretrained:
    """Pre-train on ``train`` (uint8 (N, 3, 64, 64)); after each epoch, D's real/fake and jigsaw
    accuracy on ``held_out`` are logged. Cached under ``cache/pretrain/``: a finished run is read
    back, an interrupted one resumes after its last epoch."""
    config = {"stage": "pretrain", **asdict(setting), "data": fingerprint(train, held_out),
              "code": code_fingerprint(pretrain)}
    stage = Stage(cache, "pretrain", setting.label, config)
    done = stage.read("final.pt")
    if done is not None:
        return _pretrained(done[0], setting, device, stage)
    g, d, perms = build_pretraining(setting, device)
    opt_g = torch.optim.Adam(g.parameters(), lr=setting.lr, betas=setting.betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=setting.lr, betas=setting.betas)
    rng = seeded("pretrain", setting.seed)  # every draw of the loop: order, noise, permutations
    training = Training({"G": g, "D": d}, {"G": opt_g, "D": opt_d}, rng)

    def epoch(e: int) -> dict[str, float]:
        rows = []
        for idx in torch.randperm(len(train), generator=rng).split(BATCH):
            real = to_input(train[idx], "symmetric").to(device)  # pre-training input: [-1, 1]
            z = torch.randn(len(idx), setting.latent, 1, 1, generator=rng).to(device)
            loss_d, parts_d = discriminator_loss(d, real, g(z), perms, setting.alpha, generator=rng)  # L_D
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            z = torch.randn(len(idx), setting.latent, 1, 1, generator=rng).to(device)
            loss_g, parts_g = generator_loss(d, g(z), perms, setting.beta, generator=rng)  # L_G
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            rows.append({"loss_d": loss_d.item(), "loss_g": loss_g.item(), **_prefixed("d_", parts_d),
                         **_prefixed("g_", parts_g)})
        return {**_mean(rows), **_held_out_scores(d, held_out, perms, setting, e, device)}

    train_epochs(stage.folder, training, setting.epochs, epoch, config, progress=progress, desc=setting.label)
    with torch.no_grad():
        g.eval()
        z = torch.randn(16, setting.latent, 1, 1, generator=seeded("samples", setting.seed)).to(device)
        samples = ((g(z).clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    result = Pretrained(setting, d, training.log, perms, hamming_summary(perms) if perms is not None else {},
                        samples, stage.name, config["code"])
    stage.write("final.pt", {"discriminator": d.state_dict(), "log": result.log, "hamming": result.hamming,
                             "samples": samples, "permutations": perms.cpu() if perms is not None else None})
    stage.finish()  # G, the optimisers: no longer needed
    return result


def _prefixed(prefix: str, parts: Mapping[str, Any]) -> dict[str, float]:
    return {prefix + k: float(v) for k, v in parts.items()}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


@torch.no_grad()
def _held_out_scores(d: Discriminator, images: torch.Tensor, perms: torch.Tensor | None, setting: PretrainSetting,
                     e: int, device: torch.device) -> dict[str, float]:
    """D's accuracy on held-out real images: called real (> 0.5), and the jigsaw permutation
    (drawn from a generator of its own, so evaluating leaves the training's draws unchanged)."""
    if not len(images):
        return {}
    d.eval()
    rng = seeded("held-out", setting.seed, e)
    real_ok = jigsaw_ok = 0
    for idx in torch.arange(len(images)).split(BATCH):
        x = to_input(images[idx], "symmetric").to(device)
        rf, _ = d(x)
        real_ok += int(((torch.sigmoid(rf) if not d.sigmoid_heads else rf) > 0.5).sum())
        if perms is not None:
            labels = torch.randint(len(perms), (len(idx),), generator=rng).to(device)
            _, jig = d(shuffle_tiles(x, perms, labels))
            jigsaw_ok += int((jig[:, : len(perms)].argmax(1) == labels).sum())
    d.train()
    out = {"held_out_real_accuracy": real_ok / len(images)}
    if perms is not None:
        out["held_out_jigsaw_accuracy"] = jigsaw_ok / len(images)
    return out


def _pretrained(state: Mapping[str, Any], setting: PretrainSetting, device: torch.device, stage: Stage
                ) -> Pretrained:
    """A finished pre-training, read back from its stage's ``final.pt``."""
    _, d, perms = build_pretraining(setting, device)
    d.load_state_dict(state["discriminator"])
    return Pretrained(setting, d, state["log"], perms, state["hamming"], state["samples"], stage.name,
                      stage.config["code"])


# --------------------------------------------------------------------------------------------
# Stage 2: fine-tuning


@dataclass(frozen=True)
class FinetuneSetting:
    """Fine-tuning hyperparameters: the report's (Adam 4e-4, batch 16, 20 epochs) and the authors'
    code's StepLR(step 12, gamma 0.8); ``fraction`` of the training split (Fig. 3)."""

    form: str = "corrected"
    init: str = "jigsaw"  # "scratch" (the baseline CNN), "gan" (no jigsaw) or "jigsaw"
    tiles: int = 9  # for init "jigsaw"
    trunk: str = "trainable"  # or "frozen"
    seed: int = 0
    epochs: int = 20
    lr: float = 4e-4
    step: int = 12
    gamma: float = 0.8
    fraction: float = 1.0

    def __post_init__(self):
        if self.init not in ("scratch", "gan", "jigsaw"):
            raise ValueError(f"init={self.init!r}: use 'scratch', 'gan' or 'jigsaw'")
        if self.trunk not in ("trainable", "frozen"):
            raise ValueError(f"trunk={self.trunk!r}: use 'trainable' or 'frozen'")
        if self.init == "scratch" and self.trunk == "frozen":
            raise ValueError("a frozen random trunk is not a baseline the report has: use trunk='trainable'")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction={self.fraction}: expected 0 < fraction <= 1")

    @property
    def method(self) -> str:
        """The row's method as the reported numbers name it."""
        return {"scratch": "baseline", "gan": "gan", "jigsaw": "jigsawgan"}[self.init]

    @property
    def pretraining_tiles(self) -> int:
        return self.tiles if self.init == "jigsaw" else 0

    @property
    def label(self) -> str:
        what = self.method + (str(self.tiles) if self.init == "jigsaw" else "")
        return f"{self.form}-{what}-{self.trunk}-f{self.fraction:g}-seed{self.seed}"


@dataclass
class Split:
    """A labelled split as tensors: uint8 images (N, 3, 64, 64) and int64 masks (N, 64, 64);
    for a training split, each image's place in the authors' draw of a training fraction
    (``order``, see :func:`lib.data.oxford_pet.authors_split`) and the size of the full training
    part those places count in (``full``); None: drawn here as the authors would
    (:func:`authors_order`)."""

    name: str
    images: torch.Tensor
    masks: torch.Tensor
    order: torch.Tensor | None = None
    full: int | None = None


def authors_order(n: int) -> torch.Tensor:
    """Each of ``n`` training images' place in a draw made as the authors' ``finetune.py`` makes
    it (``np.random.seed(42)``, then a shuffle), for data without the authors' split file."""
    shuffled = np.arange(n)
    np.random.RandomState(42).shuffle(shuffled)
    order = np.empty(n, np.int64)
    order[shuffled] = np.arange(n)
    return torch.from_numpy(order)


def training_subset(train: Split, fraction: float, seed: int, rule: str) -> torch.Tensor:
    """The indices of ``train`` that a fine-tuning on ``fraction`` of it uses (at least one), nested
    (20 % holds the 10 % subset) under both rules: ``"authors"``, the authors' draw, the same for
    every seed (the images whose place is below ``int(full * fraction)``, as their finetune.py
    reseeds 42 on every run); ``"seeded"``, the first ``int(fraction * n)`` of a permutation drawn
    from the seed, so that the spread over seeds includes the draw."""
    n = len(train.images)
    if rule == "authors":
        order = train.order if train.order is not None else authors_order(n)
        full = train.full if train.order is not None else n
        keep = torch.nonzero(order < int(full * fraction)).flatten()
        return keep if len(keep) else order.argmin().reshape(1)
    if rule != "seeded":
        raise ValueError(f"fraction rule {rule!r}: use 'authors' or 'seeded'")
    return torch.randperm(n, generator=seeded("fraction", seed))[: max(1, int(fraction * n))]


#: the checkpoints a fine-tuning is scored at: its last epoch, and the epoch of the lowest
#: validation loss (the one the authors' finetune.py keeps and their test() scores)
CHECKPOINTS = {"last": "last epoch", "best": "lowest val loss"}
#: images per batch in the report's protocol, by split: the authors' validation loader (16) and
#: their test() loader (21, shuffled after seeding 42: :func:`authors_test_batches`)
REPORT_BATCH = {"val": BATCH, "test": 21}


def authors_test_batches(n: int, batch: int = 21) -> list[torch.Tensor]:
    """The batches in which the authors' ``test()`` scores ``n`` test images: it seeds torch with
    42, builds its segmentation network (PyTorch's default initialisation draws from the seeded
    generator: four convolutions and two heads of D, four transposed convolutions of the decoder,
    in that order), then iterates a shuffled DataLoader of batch 21, which draws its own base seed
    and then the seed of its permutation. The same draws are made here (on a forked generator,
    the caller's random state untouched), so the batches are theirs wherever PyTorch's
    DataLoader shuffles as it did for them."""
    from torch import nn
    from torch.utils.data import DataLoader

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        for c_in, c_out in ((3, 64), (64, 128), (128, 256), (256, 512), (512, 1), (512, 30)):
            nn.Conv2d(c_in, c_out, 4)  # D's trunk, then its real/fake and jigsaw heads
        for c_in, c_out in ((512, 256), (256, 128), (128, 64), (64, 3)):
            nn.ConvTranspose2d(c_in, c_out, 4)  # the decoder
        return [b for b in DataLoader(range(n), batch_size=batch, shuffle=True)]


def finetune(train: Split, evaluate: Mapping[str, Split], setting: FinetuneSetting, pretrained: Pretrained | None,
             cache: str | Path, device: torch.device, progress: bool = False, keep: int = 8) -> dict[str, Any]:
    """Fine-tune on ``train`` for ``setting.epochs`` epochs, scoring the validation split after
    each (every score of :func:`score`, logged as ``val_*``: the report's Fig. 5, and Fig. 3's
    choice of epoch) and keeping the weights of the epoch with the lowest validation loss, as the
    authors' finetune.py does. Then every split of ``evaluate`` is scored at both checkpoints
    (:data:`CHECKPOINTS`), the test split in the authors' test() batches. Cached under
    ``cache/finetune/``; returns ``{"log", "scores": {checkpoint: {split: {...}}}, "best_epoch",
    "predictions"}`` (predictions: the lowest-validation-loss network's, as the authors keep it)."""
    f = form(setting.form)
    if (pretrained is None) != (setting.init == "scratch"):
        raise ValueError(f"{setting.label}: a pre-trained D is needed exactly when init is not 'scratch'")
    subset = training_subset(train, setting.fraction, setting.seed, f.fractions)
    config = {"stage": "finetune", **asdict(setting), "data": fingerprint(train.images[subset], train.masks[subset]),
              "evaluate": {k: fingerprint(s.images, s.masks) for k, s in evaluate.items()},
              "pretrained": pretrained.stage if pretrained is not None else None, "code": code_fingerprint(finetune)}
    stage = Stage(cache, "finetune", setting.label, config)
    done = stage.read("result.json", "predictions.npz")
    if done is not None:
        return {**done[0], "predictions": done[1]}
    init = seeded("segmentation", setting.seed)
    trunk = pretrained.discriminator.trunk if pretrained is not None else None
    frozen = setting.trunk == "frozen"
    net = SegmentationNet(trunk, len(CLASSES), softmax_output=f.softmax_output, frozen=frozen,
                          fixed_statistics=frozen and f.trunk_statistics == "fixed", generator=init).to(device)
    best = copy.deepcopy(net).requires_grad_(False)  # the weights of the lowest validation loss so far
    opt = torch.optim.Adam(net.trainable_parameters(), lr=setting.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=setting.step, gamma=setting.gamma)
    rng = seeded("finetune", setting.seed)
    training = Training({"net": net, "best": best}, {"net": opt}, rng, {"net": sched})
    images, masks = train.images[subset], train.masks[subset]
    val = evaluate.get("val")

    def epoch(e: int) -> dict[str, float]:
        losses = []
        for idx in torch.randperm(len(images), generator=rng).split(BATCH):
            x = to_input(images[idx], f.finetune_range).to(device)
            y = masks[idx].to(device)
            loss = segmentation_loss(net(x), y, f.softmax_output)  # CE (on a softmax in the code form)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        row = {"train_loss": float(np.mean(losses))}
        if val is not None:
            s = score(net, val, f)
            if all(s["loss"] < r["val_loss"] for r in training.log):  # the authors' `< best_loss`
                best.load_state_dict(net.state_dict())
            row.update({f"val_{k}": v for k, v in s.items()})
        return row

    train_epochs(stage.folder, training, setting.epochs, epoch, config, progress=progress, desc=setting.label)
    if val is None:  # nothing to choose by: the last epoch is kept
        best.load_state_dict(net.state_dict())
    losses = [r["val_loss"] for r in training.log] if val is not None else []
    best_epoch = 1 + int(np.argmin(losses)) if losses else setting.epochs
    nets = {"last": net, "best": best}
    scores = {which: {name: score(n, split, f, batch=REPORT_BATCH.get(name, BATCH),
                                  batches=authors_test_batches(len(split.images)) if name == "test" else None)
                      for name, split in evaluate.items()} for which, n in nets.items()}
    predictions = {name: predict(best, split.images[:keep], f) for name, split in evaluate.items()}
    code = code_fingerprint(pretrain, finetune) if pretrained is not None else config["code"]
    result = {"setting": asdict(setting), "log": training.log, "scores": scores, "best_epoch": best_epoch,
              "train_images": len(subset), "seconds": float(sum(r["seconds"] for r in training.log)), "code": code}
    stage.write("predictions.npz", predictions)
    stage.write("result.json", result)
    stage.finish()
    return {**result, "predictions": predictions}


@torch.no_grad()
def predict(net: SegmentationNet, images: torch.Tensor, f: Form) -> np.ndarray:
    """Class maps (N, 64, 64) uint8 of ``images``."""
    net.eval()
    out = [net(to_input(images[i: i + BATCH], f.finetune_range).to(next(net.parameters()).device)).argmax(1)
           for i in range(0, len(images), BATCH)]
    net.train()
    return torch.cat(out).byte().cpu().numpy() if out else np.zeros((0, 64, 64), np.uint8)


@torch.no_grad()
def score(net: SegmentationNet, split: Split, f: Form, batch: int = BATCH,
          batches: Sequence[torch.Tensor] | None = None) -> dict[str, float]:
    """Both protocols on ``split``: one confusion matrix over the whole split (pixel accuracy,
    class accuracy, per-class and mean IoU: the order of the images does not matter) and the
    report's batch means (micro pixel accuracy; micro Jaccard with background targets dropped;
    and the mean cross-entropy the model trains on), over ``batches`` (index tensors: the
    authors' test() order) or batches of ``batch`` in the split's order."""
    net.eval()
    device = next(net.parameters()).device
    matrix, report = ConfusionMatrix(len(CLASSES), CLASSES), ReportProtocol(ignore_index=CLASSES.index("background"))
    losses = []
    if batches is None:
        batches = torch.arange(len(split.images)).split(batch)
    for idx in batches:
        out = net(to_input(split.images[idx], f.finetune_range).to(device))
        target = split.masks[idx].to(device)
        losses.append(segmentation_loss(out, target, f.softmax_output).item())
        pred = out.argmax(1)
        matrix.update(pred, target)
        report.update(pred, target)
    net.train()
    ours, theirs = matrix.scores(), report.scores()
    row = {"loss": float(np.mean(losses)), "pixel_accuracy": ours["pixel_accuracy"],
           "class_accuracy": ours["class_accuracy"], "mean_iou": ours["mean_iou"],
           **{f"iou_{k}": v for k, v in ours["iou"].items()},
           "report_pixel_accuracy": theirs["pixel_accuracy"], "report_iou": theirs["iou"]}
    return {k: float(v) for k, v in row.items()}


def settings(forms, seeds, tiles=(9, 4), trunks=("trainable", "frozen"), fractions=(1.0,), epochs: int = 20,
             inits=("scratch", "gan", "jigsaw")) -> list[FinetuneSetting]:
    """Every fine-tuning configuration of Table 1 (or Fig. 3 with several ``fractions``)."""
    out = []
    for fm in forms:
        for seed in seeds:
            for fraction in fractions:
                for init in inits:
                    for trunk in (("trainable",) if init == "scratch" else trunks):
                        for t in (tiles if init == "jigsaw" else (0,)):
                            out.append(FinetuneSetting(fm, init, t, trunk, seed, epochs, fraction=fraction))
    return out


def pretraining_for(s: FinetuneSetting, base: PretrainSetting) -> PretrainSetting | None:
    """The pre-training a fine-tuning setting needs (``base`` with its form, tiles and seed)."""
    if s.init == "scratch":
        return None
    return replace(base, form=s.form, tiles=s.pretraining_tiles, seed=s.seed)


def run(fine: list[FinetuneSetting], base: PretrainSetting, unlabelled: tuple[torch.Tensor, torch.Tensor],
        train: Split, evaluate: Mapping[str, Split], cache: str | Path, device: torch.device,
        progress: bool = False):
    """Every fine-tuning of ``fine`` with the pre-training each needs (trained once, on
    ``unlabelled`` = (train, held-out) images, and shared); returns the runs table (one row per
    setting and evaluated split, typed columns), the pre-trained models by label and the results."""
    import pandas as pd

    pretrained: dict[PretrainSetting, Pretrained] = {}
    rows, results = [], {}
    for s in fine:
        p = pretraining_for(s, base)
        if p is not None and p not in pretrained:
            pretrained[p] = pretrain(*unlabelled, p, cache, device, progress)
        result = finetune(train, evaluate, s, pretrained.get(p), cache, device, progress)
        results[s] = result
        for which, checkpoint in CHECKPOINTS.items():
            for split in evaluate:  # in the caller's order (a cached result's keys come back sorted)
                scores = result["scores"][which][split]
                rows.append({"form": s.form, "method": s.method,
                             "tiles": float(s.tiles) if s.init == "jigsaw" else np.nan, "trunk": s.trunk,
                             "fraction": s.fraction, "seed": s.seed, "split": split, "checkpoint": checkpoint,
                             "epoch": result["best_epoch"] if which == "best" else s.epochs, "epochs": s.epochs,
                             "train_images": result["train_images"], **{k: scores[k] for k in SCORES},
                             "seconds": result["seconds"], "code": result["code"]})
    return pd.DataFrame(rows), {p.label: v for p, v in pretrained.items()}, results


# --------------------------------------------------------------------------------------------
# Experiments: one fine-tuning dataset with its pre-training dataset, every setting


def tensors(samples, resize: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 images (N, 3, 64, 64) and int64 masks (N, 64, 64) (None without ground truth)."""
    from ..data.tensors import to_tensors

    return to_tensors(samples, size=64, image_resize=resize)


def labelled_split(name: str, samples, resize: str) -> Split:
    """A labelled split as tensors, with the authors' draw order of its images when the data
    carry it (``meta["order"]`` and ``meta["part_size"]``: Oxford-IIIT Pet's split file)."""
    images, masks = tensors(samples, resize)
    orders = [s.meta.get("order") for s in samples]
    if not orders or any(o is None for o in orders):
        return Split(name, images, masks)
    return Split(name, images, masks, torch.tensor(orders), int(samples[0].meta["part_size"]))


def unlabelled_split(images: torch.Tensor, held_out: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded 80 / 20 split of the pre-training images (the authors' code trains its GAN
    on a random 80 % and scores D on the rest)."""
    order = torch.randperm(len(images), generator=seeded("pretraining split"))
    cut = len(images) - int(round(held_out * len(images))) if len(images) > 1 else len(images)
    return images[order[:cut]], images[order[cut:]]


def model_label(row: Mapping[str, Any]) -> str:
    """How a fine-tuning reads in tables and legends: "jigsaw 9 tiles, frozen"."""
    what = {"baseline": "baseline CNN", "gan": "GAN without jigsaw"}.get(row["method"])
    what = what or f"jigsaw {int(row['tiles'])} tiles"
    return what if row["trunk"] == "trainable" else f"{what}, frozen"


@dataclass
class Experiment:
    """The runs of one fine-tuning dataset (``name``) after pre-training on another."""

    name: str
    runs: Any  # pandas DataFrame: one row per setting and scored split
    pretrained: dict[str, Pretrained]
    results: dict[FinetuneSetting, dict[str, Any]]
    ground_truth: dict[str, Split]  # the val split of each form (its masks, its images)
    full_data: bool  # the full datasets (the report's), not a subset

    def pretraining_log(self):
        import pandas as pd

        rows = [{"model": f"{p.setting.form}, {'GAN' if not p.setting.tiles else f'jigsaw {p.setting.tiles}'}",
                 "form": p.setting.form, "tiles": p.setting.tiles, "seed": p.setting.seed, **r}
                for p in self.pretrained.values() for r in p.log]
        return pd.DataFrame(rows)

    def finetuning_log(self):
        import pandas as pd

        rows = [{"model": f"{s.form}, {model_label(asdict(s) | {'method': s.method})}", "seed": s.seed, **r}
                for s, res in self.results.items() if s.fraction == 1.0 for r in res["log"]]
        return pd.DataFrame(rows)

    def masks_figure(self, seed: int, n: int = 4):
        """Fig. 4: the first ``n`` validation images, their ground truth and every trainable
        configuration's prediction at its lowest-validation-loss epoch (first form's images)."""
        from .. import plots

        chosen = [(s, r) for s, r in self.results.items() if s.seed == seed and s.trunk == "trainable"
                  and s.fraction == 1.0]
        rows = []
        for i in range(min(n, len(self.ground_truth[chosen[0][0].form].images))):
            split = self.ground_truth[chosen[0][0].form]
            panels = [("image", split.images[i].permute(1, 2, 0).numpy()), ("ground truth", split.masks[i].numpy())]
            panels += [(f"{s.form}\n{model_label(asdict(s) | {'method': s.method})}", r["predictions"]["val"][i])
                       for s, r in chosen]
            rows.append((f"val {i}", panels))
        return plots.image_rows(rows, width=1.3)


def run_experiment(sets: Mapping[str, list], name: str, pretraining: str, fine: list[FinetuneSetting],
                   base: PretrainSetting, cache: str | Path, device: torch.device, progress: bool = False,
                   full_sizes: tuple[int, int] = (3680, 3669)) -> Experiment:
    """Every setting of ``fine`` on ``sets[name/train]``, scored on ``name/val`` and ``name/test``,
    after pre-training on ``sets[pretraining/pretrain]``; images resized as each form does."""
    import pandas as pd

    unlabelled = unlabelled_split(tensors(sets[f"{pretraining}/pretrain"], "bilinear")[0])
    tables, pretrained, results, truth = [], {}, {}, {}
    for fm in dict.fromkeys(s.form for s in fine):
        resize = form(fm).finetune_resize
        parts = {p: labelled_split(p, sets[f"{name}/{p}"], resize) for p in ("train", "val", "test")
                 if f"{name}/{p}" in sets and len(sets[f"{name}/{p}"])}
        truth[fm] = parts["val"]
        evaluate = {p: s for p, s in parts.items() if p != "train"}
        runs, pre, res = run([s for s in fine if s.form == fm], base, unlabelled, parts["train"], evaluate, cache,
                             device, progress)
        tables.append(runs)
        pretrained.update(pre)
        results.update(res)
    runs = pd.concat(tables, ignore_index=True)
    runs.insert(0, "model", [model_label(r) for _, r in runs.iterrows()])
    n_trainval = len(sets.get(f"{name}/train", [])) + len(sets.get(f"{name}/val", []))
    full = name == "oxford_pet" and (n_trainval, len(sets.get(f"{name}/test", []))) == full_sizes
    return Experiment(name, runs, pretrained, results, truth, full)


#: Table 1's metrics, in % in the tables
METRICS = ("report_pixel_accuracy", "report_iou", "pixel_accuracy", "mean_iou", "iou_pet", "iou_background",
           "iou_border", "class_accuracy")


def table1(runs, comparable: bool = False, split: str = "test", checkpoint: str = CHECKPOINTS["best"]):
    """Mean and std over seeds of :data:`METRICS` in % (and of the epoch scored), per form and
    configuration, on ``split`` at ``checkpoint``. The report's Table 1 stands beside the rows it
    reports: Oxford-IIIT Pet's test split at the lowest-validation-loss checkpoint, as the authors'
    test() scores it (``diff`` only when the run is ``comparable``: the report's data and epochs)."""
    from ..reported import paper_number
    from ..tables import seed_summary, with_paper_columns

    runs = runs[(runs["split"] == split) & (runs["checkpoint"] == checkpoint)].copy()
    for m in METRICS:
        runs[m] = runs[m] * 100
    keep = ["model", "form", "method", "tiles", "trunk", "dataset", "split", "checkpoint", "seed", "epoch",
            *METRICS, "seconds"]
    summary = seed_summary(runs[keep], ["epoch", *METRICS, "seconds"])
    reported = (split, checkpoint) == ("test", CHECKPOINTS["best"]) and set(runs["dataset"]) == {"oxford_pet"}

    def paper(row, metric):
        return paper_number("jigsawgan", row, "oxford_pet", metric) if reported else np.nan

    return with_paper_columns(summary, ("report_pixel_accuracy", "report_iou"), paper, comparable)


def pretraining_summary(log):
    """The last epoch of each pre-training, mean over seeds."""
    last = log[log.epoch == log.epoch.max()]
    columns = [c for c in ("loss_d", "loss_g", "d_jigsaw", "g_jigsaw", "held_out_real_accuracy",
                           "held_out_jigsaw_accuracy", "seconds") if c in last.columns]
    return last.groupby(["form", "tiles"], as_index=False)[columns].mean().assign(
        seeds=last.groupby(["form", "tiles"])["seed"].nunique().values, epoch=int(log.epoch.max()))


#: Fig. 3's epoch, three ways: the authors' (the highest validation pixel accuracy of the 20
#: epochs, the report's protocol, as their notebook plots it), the epoch they keep (the lowest
#: validation loss) and the last; each picks one row of a fine-tuning's per-epoch log
FIG3_CHECKPOINTS = {
    "highest val accuracy": lambda log: int(np.argmax([r["val_report_pixel_accuracy"] for r in log])),
    CHECKPOINTS["best"]: lambda log: int(np.argmin([r["val_loss"] for r in log])),
    CHECKPOINTS["last"]: lambda log: len(log) - 1,
}
#: Fig. 3's scores, on the validation split (%)
FIG3_METRICS = ("report_pixel_accuracy", "report_iou", "pixel_accuracy", "mean_iou")


def fig3_points(exp: "Experiment"):
    """One row per fine-tuning, seed and way of choosing the epoch (:data:`FIG3_CHECKPOINTS`): the
    validation scores of that epoch, from the per-epoch log (fractions of the training split)."""
    import pandas as pd

    rows = []
    for s, result in exp.results.items():
        log = result["log"]
        if not log or "val_loss" not in log[0]:
            continue
        for checkpoint, choose in FIG3_CHECKPOINTS.items():
            row = log[choose(log)]
            rows.append({"model": model_label(asdict(s) | {"method": s.method}), "form": s.form, "method": s.method,
                         "tiles": float(s.tiles) if s.init == "jigsaw" else np.nan, "fraction": s.fraction,
                         "train_images": result["train_images"], "dataset": exp.name, "split": "val",
                         "checkpoint": checkpoint, "seed": s.seed, "epoch": row["epoch"],
                         **{m: 100 * row[f"val_{m}"] for m in FIG3_METRICS}})
    return pd.DataFrame(rows)


def datasize_table(points):
    """Fig. 3's numbers: mean and std over seeds (in %) of :func:`fig3_points`, per form,
    configuration, fraction and choice of epoch."""
    from ..tables import seed_summary

    return seed_summary(points, ["epoch", *FIG3_METRICS])
