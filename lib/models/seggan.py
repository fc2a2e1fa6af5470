"""The networks of SegGAN (Zhang et al., "SegGAN: semantic segmentation with generative
adversarial network", BigMM 2018, section II.A and Fig. 1). No implementation was published: every
width, kernel and normalisation below is a choice of this study where the paper is silent, named
as such.

- :func:`segmentation_net`: torchvision's DeepLabV3 (the paper: "DeepLab [4]") with a ResNet-101
  backbone for the ``paper`` profile, or a smaller torchvision backbone; logits per class at the
  input's size. Weights: none (random), a torchvision weights name, or a local file.
- :class:`MaskToImage` G: "4 convolutional layers and 4 de-convolutional layers with random
  dropout at the rate 0.5", after pix2pix (Isola et al. 2017, the paper's [11]): stride-2 4x4
  convolutions (LeakyReLU 0.2, BatchNorm after the first), then stride-2 4x4 transposed
  convolutions (BatchNorm, ReLU, dropout 0.5 on the first three as pix2pix does) to an image in
  [-1, 1] (tanh). No skip connections: the paper names none. Its input is the class
  probabilities and, "simultaneously", the image (``with_image``): the paper's choice, which
  lets G copy the image without reading the mask (see ``lib/methods/seggan.py``).

G's and D's initial weights are "isotropic Gaussian" (section III.A): N(0, 0.02), pix2pix's.
- :class:`ImageDiscriminator` D: "4 convolutional layers with ReLU ... followed every layer but
  excludes the last": 4x4 convolutions, stride 2, 2, 2, 1, no normalisation (none is named), one
  logit per patch; the loss averages the patches. It sees an image only (eq. 1: D(I), D(I^R)).
  Section IV blames "the GAN model's fully-connected layer" for losing location information on
  some VOC classes; the D of section II.A has four convolutions and no such layer, so none is
  added: a patch D keeps the location information that remark says was lost.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .seeded import seeded_init

#: backbone name -> torchvision builder of DeepLabV3 on it
BACKBONES = {"resnet101": "deeplabv3_resnet101", "resnet50": "deeplabv3_resnet50",
             "mobilenet_v3_large": "deeplabv3_mobilenet_v3_large"}
#: ImageNet's mean and standard deviation, the input normalisation of every torchvision backbone
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


#: DeepLab's BatchNorm layers while it trains: "train" (batch statistics, running statistics
#: updated: PyTorch's default) or "frozen" (the stored statistics used and kept, as DrSleep's
#: DeepLab-ResNet trains by default, ``--is-training`` off, because batches of a few crops give
#: poor statistics; the scale and shift still learn). SegGAN's paper says nothing of it.
BATCHNORM = ("train", "frozen")


class DeepLab(nn.Module):
    """torchvision's DeepLabV3 taking images in [0, 1] (normalised inside, as its backbones
    expect) and returning logits (N, classes, H, W) at the input's size. ``weights_note`` says
    where the initial weights came from (for table captions); ``batchnorm`` how its BatchNorm
    layers train (:data:`BATCHNORM`)."""

    def __init__(self, model: nn.Module, backbone: str, weights_note: str, batchnorm: str = "train"):
        super().__init__()
        if batchnorm not in BATCHNORM:
            raise ValueError(f"batchnorm={batchnorm!r}: use one of {', '.join(BATCHNORM)}")
        self.model, self.backbone, self.weights_note, self.batchnorm = model, backbone, weights_note, batchnorm
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "DeepLab":
        """Training mode; with ``batchnorm="frozen"`` the BatchNorm layers stay in evaluation mode."""
        super().train(mode)
        if self.batchnorm == "frozen":
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)["out"]


def _fresh_last_layer(model: nn.Module, classes: int) -> None:
    """Replace the classifier's last 1x1 convolution by a fresh one with ``classes`` outputs."""
    last = model.classifier[-1]
    model.classifier[-1] = nn.Conv2d(last.in_channels, classes, 1)


def segmentation_net(classes: int, backbone: str = "resnet101", weights: str | None = None,
                     generator: torch.Generator | None = None, batchnorm: str = "train") -> DeepLab:
    """DeepLabV3 on ``backbone`` with ``classes`` outputs and no auxiliary head, its BatchNorm
    layers training as ``batchnorm`` says (:data:`BATCHNORM`).

    ``weights``:

    - ``None``: random initialisation (seeded by ``generator``);
    - a torchvision weights name: a backbone's (``"ResNet101_Weights.IMAGENET1K_V1"``: ImageNet,
      as SegGAN on Stanford Background) or a whole DeepLabV3's
      (``"DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1"``: COCO images with the 21 VOC
      classes; its last layer is re-initialised when ``classes`` is not 21). torchvision fetches
      the file once into its cache (``TORCH_HOME``); offline, pass the file's path instead;
    - the path of a file holding a ``state_dict`` of this network (``DeepLab``'s or the inner
      torchvision model's keys): every tensor of matching name and shape is loaded, and the
      classifier's last layer stays random when its class count differs.
    """
    import torchvision.models.segmentation as seg
    from torchvision.models import get_weight

    if backbone not in BACKBONES:
        raise ValueError(f"backbone={backbone!r}: use one of {', '.join(BACKBONES)}")
    if classes < 2:
        raise ValueError(f"classes={classes}: a segmentation has at least 2 classes")
    builder = getattr(seg, BACKBONES[backbone])
    kwargs = {"weights": None, "weights_backbone": None, "aux_loss": False}
    note, path = "random initialisation", None
    if weights is not None:
        if Path(weights).expanduser().is_file():
            path = Path(weights).expanduser()
        else:
            try:
                enum = get_weight(weights)
            except (ValueError, KeyError, AttributeError) as exc:
                raise ValueError(f"weights={weights!r}: neither a file nor a torchvision weights name such as "
                                 "'ResNet101_Weights.IMAGENET1K_V1' or "
                                 "'DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1'") from exc
            whole = type(enum).__name__.startswith("DeepLabV3_")
            kwargs["weights" if whole else "weights_backbone"] = enum
            note = f"{weights} ({'whole network' if whole else 'backbone'})"
    with seeded_init(generator):
        try:
            if kwargs["weights"] is not None:  # these weights come with the auxiliary head: built, then dropped
                model = builder(weights=kwargs["weights"], aux_loss=True)
                model.aux_classifier = None
                if classes != model.classifier[-1].out_channels:
                    _fresh_last_layer(model, classes)
                    note += f"; last layer re-initialised for {classes} classes"
            else:
                model = builder(num_classes=classes, **kwargs)
        except (OSError, RuntimeError) as exc:  # urllib's errors are OSErrors
            raise RuntimeError(f"cannot fetch the weights {weights!r}: {exc}\n  Without internet, download the "
                               "file on a machine that has it and pass its path as weights") from exc
    net = DeepLab(model, backbone, note, batchnorm)
    if path is not None:
        net.weights_note = _load_file(net, path)
    return net


def _load_file(net: DeepLab, path: Path) -> str:
    """Load every tensor of matching name and shape from ``path``; returns the caption note."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"weights={str(path)!r}: cannot read it as a PyTorch state_dict ({exc})") from exc
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    state = {(k if k.startswith("model.") else f"model.{k}"): v for k, v in state.items()}
    own = net.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not any(k.startswith("model.backbone.") for k in loaded):
        raise ValueError(f"weights={str(path)!r}: no backbone tensor of this {net.backbone} DeepLabV3 in it "
                         f"(its first keys: {list(state)[:3]})")
    net.load_state_dict(loaded, strict=False)
    skipped = len(own) - len(loaded)
    return f"{path.name}" + (f" ({skipped} tensors of other shape or absent left random)" if skipped else "")


def gaussian_init(net: nn.Module, std: float = 0.02) -> nn.Module:
    """SegGAN's "isotropic Gaussian weights" (section III.A) with pix2pix's spread: every
    (transposed) convolution's weights from N(0, ``std``) and biases 0; BatchNorm's scale from
    N(1, ``std``) and shift 0. Draws from the global random state (seed it, as the constructors
    do through ``seeded_init``)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return net


def _down(cin: int, cout: int, norm: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2))


def _up(cin: int, cout: int, dropout: float) -> nn.Sequential:
    layers = [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MaskToImage(nn.Module):
    """G: class probabilities (N, classes, H, W), and the image (N, 3, H, W) in [-1, 1] when
    ``with_image``, to an image (N, 3, H, W) in [-1, 1]; H and W multiples of 16.

    Encoder widths ``width`` x (1, 2, 4, 8), decoder back; ``dropout`` on the first three decoder
    layers (see the module docstring)."""

    def __init__(self, classes: int, with_image: bool = True, width: int = 64, dropout: float = 0.5,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.classes, self.with_image = classes, with_image
        w = width
        with seeded_init(generator):
            self.encoder = nn.Sequential(_down(classes + 3 * with_image, w, norm=False), _down(w, 2 * w, True),
                                         _down(2 * w, 4 * w, True), _down(4 * w, 8 * w, True))
            self.decoder = nn.Sequential(_up(8 * w, 4 * w, dropout), _up(4 * w, 2 * w, dropout),
                                         _up(2 * w, w, dropout), nn.ConvTranspose2d(w, 3, 4, 2, 1), nn.Tanh())
            gaussian_init(self)

    def forward(self, probabilities: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        h, w = probabilities.shape[-2:]
        if h % 16 or w % 16:
            raise ValueError(f"G needs a height and width that are multiples of 16; got {h}x{w} (choose crop so)")
        if self.with_image:
            if image is None:
                raise ValueError("this G takes the mask and the image: pass image")
            probabilities = torch.cat([probabilities, image], 1)
        return self.decoder(self.encoder(probabilities))


class ImageDiscriminator(nn.Module):
    """D: an image (N, 3, H, W) in [-1, 1] to one real/fake logit per patch (N, 1, h, w)."""

    def __init__(self, width: int = 64, generator: torch.Generator | None = None):
        super().__init__()
        w = width
        with seeded_init(generator):
            self.layers = nn.Sequential(
                nn.Conv2d(3, w, 4, 2, 1), nn.ReLU(),
                nn.Conv2d(w, 2 * w, 4, 2, 1), nn.ReLU(),
                nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.ReLU(),
                nn.Conv2d(4 * w, 1, 4, 1, 1))
            gaussian_init(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)
