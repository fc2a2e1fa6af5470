"""The networks of JigsawGAN (Peña Alarcón 2024, UCL report, section 2 and Fig. 1), at 64 x 64
pixels, with the layer widths of the authors' code (kawaiiblitz/GAN_SelfSupervised @5a8e92f,
``models.py``: ``FlexibleGenerator``, ``FlexibleDiscriminator``, ``FlexibleGANForSegmentation``).

- :class:`Generator` G: noise z ~ N(0, I) of ``latent`` dimensions to an image in [-1, 1];
  five transposed convolutions (the report's "5 ConvTranspose" DCGAN generator).
- :class:`Discriminator` D: four strided convolutions (the trunk, 64 -> 4 pixels, 3 -> 512
  channels), then two 4 x 4 convolution heads: real/fake and the jigsaw permutation class.
- :class:`SegmentationNet`: D's trunk (pre-trained, or fresh for the baseline CNN) with a
  transposed-convolution decoder back to 64 x 64 pixels and one map per class.

Initialisation: PyTorch's default (Kaiming-uniform convolution weights, BatchNorm weight 1 and
bias 0), as in the authors' code, which never applies DCGAN's N(0, 0.02) initialisation. Each
constructor takes an optional ``generator``: the layers are then built under a CPU random state
seeded from it, so the same seeded generator gives the same weights on every run, and the global
random state is left as it was.

The modules of ``Generator.model`` and ``Discriminator.trunk`` are numbered as in the authors'
``nn.Sequential``s (their D calls the trunk ``model``; their heads are ``real_fake.0`` and
``jigsaw.0`` where the sigmoid is a module).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .seeded import seeded_init


class Generator(nn.Module):
    """G of JigsawGAN: the authors' ``FlexibleGenerator`` at ``output_size = 64``.

    ConvTranspose2d(latent, 512, 4, 1, 0) -> 4 x 4, then 512 -> 256 -> 128 -> 64 channels with
    ConvTranspose2d(4, 2, 1) (8, 16, 32 pixels), each followed by BatchNorm and ReLU, then
    ConvTranspose2d(64, 3, 4, 2, 1) -> 64 x 64 and tanh.

    Args:
        latent: dimension of z (the authors' ``latent_dim = 100``).
        generator: seeds the initial weights (see the module docstring).
    """

    def __init__(self, latent: int = 100, generator: torch.Generator | None = None):
        super().__init__()
        self.latent = latent
        with seeded_init(generator):
            layers: list[nn.Module] = [nn.ConvTranspose2d(latent, 512, 4, 1, 0), nn.BatchNorm2d(512), nn.ReLU()]
            for width in (512, 256, 128):
                layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.BatchNorm2d(width // 2), nn.ReLU()]
            layers += [nn.ConvTranspose2d(64, 3, 4, 2, 1), nn.Tanh()]
            self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``(N, latent, 1, 1)`` (or ``(N, latent)``) -> images ``(N, 3, 64, 64)`` in [-1, 1]."""
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.model(z)


def discriminator_trunk() -> nn.Sequential:
    """D's feature extractor (the authors' ``FlexibleDiscriminator.model`` at 64 pixels):
    Conv2d(3, 64, 4, 2, 1) + LeakyReLU(0.2), then 64 -> 128 -> 256 -> 512 channels with
    Conv2d(4, 2, 1) + BatchNorm + LeakyReLU(0.2); ``(N, 3, 64, 64)`` -> ``(N, 512, 4, 4)``."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2)]
    for width in (64, 128, 256):
        layers += [nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """D of JigsawGAN: :func:`discriminator_trunk`, then two heads on its ``(N, 512, 4, 4)``
    features, ``real_fake`` = Conv2d(512, 1, 4, 1, 0) and ``jigsaw`` = Conv2d(512, classes, 4, 1, 0).

    Args:
        jigsaw_classes: outputs of the jigsaw head. The authors keep 30 (their ``num_classes``
            default) for 4 tiles too, where only 24 permutations exist, so six outputs never
            have a target; the caller passes 30 for the code form, ``len(perms)`` otherwise.
        sigmoid_heads: True (the ``code`` form): both heads end in a sigmoid, as in the authors'
            code, so the outputs are probabilities and the jigsaw cross-entropy is later applied
            to sigmoid outputs. False (the ``corrected`` form): both heads return logits.
        generator: seeds the initial weights (see the module docstring).
    """

    def __init__(self, jigsaw_classes: int = 30, sigmoid_heads: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.jigsaw_classes = jigsaw_classes
        self.sigmoid_heads = sigmoid_heads
        with seeded_init(generator):
            self.trunk = discriminator_trunk()
            self.real_fake = nn.Conv2d(512, 1, 4, 1, 0)
            self.jigsaw = nn.Conv2d(512, jigsaw_classes, 4, 1, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(N, 3, 64, 64)`` -> ``(real/fake (N,), jigsaw (N, jigsaw_classes))``,
        probabilities when ``sigmoid_heads`` else logits."""
        features = self.trunk(x)
        real_fake = self.real_fake(features).flatten()
        jigsaw = self.jigsaw(features).flatten(1)
        if self.sigmoid_heads:
            return torch.sigmoid(real_fake), torch.sigmoid(jigsaw)
        return real_fake, jigsaw


class SegmentationNet(nn.Module):
    """The fine-tuning network of JigsawGAN (report section 2, "Fine-Tuning with Convolutional
    Neural Networks"; the authors' ``FlexibleGANForSegmentation``).

    D's trunk ``(N, 512, 4, 4)``, then the decoder: ConvTranspose2d(4, 2, 1) 512 -> 256 -> 128 ->
    64 channels, each with BatchNorm and LeakyReLU (PyTorch's default slope 0.01, as the authors
    write ``nn.LeakyReLU(inplace=True)``), then ConvTranspose2d(64, classes, 4, 2, 1): 64 x 64
    pixels, one map per class.

    Args:
        trunk: a trained trunk (deep-copied, so fine-tuning never changes the module passed in,
            e.g. a pre-trained D shared by several fine-tunings); None builds a fresh randomly
            initialised one: the baseline CNN, as the authors' baseline is this network without
            pre-trained weights.
        classes: output maps (3: pet, background, border).
        softmax_output: end in Softmax(dim=1) (the ``code`` form: the authors apply
            CrossEntropyLoss to this softmax, a double softmax); False returns logits.
        frozen: the trunk's parameters get ``requires_grad = False``, so only the decoder
            learns. As with the authors' ``requires_grad`` freeze, the trunk's BatchNorm layers
            still update their running statistics whenever the network is in training mode,
            unless ``fixed_statistics``.
        fixed_statistics: keep the trunk in evaluation mode while the network trains, so that a
            frozen trunk is frozen whole, running statistics included (the report says the
            frozen representation is not altered; the authors' code lets the statistics drift).
        generator: seeds the decoder's (and a fresh trunk's) initial weights.
    """

    def __init__(self, trunk: nn.Module | None = None, classes: int = 3, softmax_output: bool = False,
                 frozen: bool = False, fixed_statistics: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        self.classes = classes
        self.softmax_output = softmax_output
        self.frozen = frozen
        self.fixed_statistics = fixed_statistics
        with seeded_init(generator):
            self.trunk = copy.deepcopy(trunk) if trunk is not None else discriminator_trunk()
            layers: list[nn.Module] = []
            for width in (512, 256, 128):
                layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.BatchNorm2d(width // 2), nn.LeakyReLU()]
            layers.append(nn.ConvTranspose2d(64, classes, 4, 2, 1))
            self.decoder = nn.Sequential(*layers)
        for p in self.trunk.parameters():
            p.requires_grad_(not frozen)

    @classmethod
    def from_discriminator(cls, d: Discriminator, **kwargs) -> "SegmentationNet":
        """The fine-tuning network on a copy of ``d``'s trunk (``d`` itself is left untouched)."""
        return cls(d.trunk, **kwargs)

    def train(self, mode: bool = True) -> "SegmentationNet":
        """Training mode; the trunk stays in evaluation mode when ``fixed_statistics``."""
        super().train(mode)
        if self.fixed_statistics:
            self.trunk.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters to optimise: the decoder's, and the trunk's unless ``frozen``."""
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(N, 3, 64, 64)`` -> ``(N, classes, 64, 64)``: a softmax over the classes when
        ``softmax_output``, else logits."""
        out = self.decoder(self.trunk(x))
        return torch.softmax(out, dim=1) if self.softmax_output else out
