"""The network of Kanezaki, "Unsupervised image segmentation by backpropagation" (ICASSP 2018).

Sec. 2.1 / Fig. 1: M convolutional components, each a 3x3 convolution with p filters, ReLU and
batch normalisation "where a batch corresponds to N pixels of a single input image"; then a
"linear classifier" (a 1x1 convolution to q channels, y_n = W_c x_n + b_c) and the response
normalisation of Eq. (2), y'_{n,i} = (y_{n,i} - mu_i) / sqrt(sigma_i^2 + eps), before argmax.

Forms (see ``lib/methods/kanezaki2018.py``):
- ``paper``: Xavier-uniform weights and zero biases (Sec. 2.4), Eq. (2) as pure whitening.
- ``code``: the authors' demo.py (kanezaki/pytorch-unsupervised-segmentation): PyTorch's default
  initialisation and a final BatchNorm with a learnable affine transform.
In both forms the BatchNorms inside the M components are PyTorch's standard (affine) ones.

Batching: the module holds ``n_models`` independent networks. Their weights are stacked along
the output channels of grouped convolutions (``groups=n_models``), and every BatchNorm works on
``(1, n_models * channels, H, W)`` so its statistics are per image and per channel, exactly as
for one image. Each model is initialised from its own random generator.

``layout`` (:class:`lib.layout.Layout`) says in which memory layout the convolutions and the
normalisations run; the loop sets it from a measurement (``lib/layout.py``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..layout import Layout


class Kanezaki2018Net(nn.Module):
    """A batch of ``n_models`` Kanezaki 2018 networks.

    Args:
        n_models: B, the number of independent networks (one per image).
        n_layers: M, the number of 3x3 conv -> ReLU -> BN components (the paper varies 1..5).
        channels: p, filters per component (paper: 100).
        classes: q, size of the response (paper: 100).
        in_channels: input channels (3).
        init: ``"xavier"`` (paper) or ``"default"`` (PyTorch's, as in the authors' code).
        response_affine: learnable scale/shift after the response normalisation (code form).
        generators: one ``torch.Generator`` per model for its initial weights.
        eps: the epsilon of Eq. (2) and of every BatchNorm.
    """

    def __init__(
        self,
        n_models: int = 1,
        n_layers: int = 2,
        channels: int = 100,
        classes: int = 100,
        in_channels: int = 3,
        init: str = "xavier",
        response_affine: bool = False,
        generators: Sequence[torch.Generator] | None = None,
        eps: float = 1e-5,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers={n_layers}: the network needs at least one conv component (M >= 1)")
        if init not in ("xavier", "default"):
            raise ValueError(f"init={init!r}: use 'xavier' (paper) or 'default' (authors' code)")
        B = n_models
        self.n_models, self.classes, self.in_channels = B, classes, in_channels
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        cin = in_channels
        for _ in range(n_layers):
            self.convs.append(nn.Conv2d(B * cin, B * channels, 3, padding=1, groups=B))
            self.norms.append(nn.BatchNorm2d(B * channels, eps=eps, track_running_stats=False))
            cin = channels
        self.classifier = nn.Conv2d(B * channels, B * classes, 1, groups=B)
        self.response_norm = nn.BatchNorm2d(B * classes, eps=eps, affine=response_affine, track_running_stats=False)
        self.layout = Layout()
        gens = list(generators) if generators is not None else [None] * B
        if len(gens) != B:
            raise ValueError(f"got {len(gens)} generators for {B} models")
        self._initialise(init, gens)

    @torch.no_grad()
    def _initialise(self, init: str, generators: Sequence[torch.Generator | None]) -> None:
        for conv in [*self.convs, self.classifier]:
            per_model = conv.out_channels // self.n_models
            fan_in = conv.weight[0].numel()
            for b, g in enumerate(generators):
                w = conv.weight[b * per_model : (b + 1) * per_model]
                bias = conv.bias[b * per_model : (b + 1) * per_model]
                if init == "xavier":  # Glorot & Bengio 2010, uniform, as the paper says (Sec. 2.4)
                    nn.init.xavier_uniform_(w, generator=g)
                    bias.zero_()
                else:  # what nn.Conv2d.reset_parameters does
                    nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
                    bound = 1 / math.sqrt(fan_in)
                    nn.init.uniform_(bias, -bound, bound, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` images -> ``(B, q, H, W)`` normalised responses y'."""
        B, C, H, W = x.shape
        if B != self.n_models or C != self.in_channels:
            raise ValueError(f"input of shape {tuple(x.shape)} for {self.n_models} models of {self.in_channels} channels")
        L = self.layout
        h = x.reshape(1, B * C, H, W)
        for conv, norm in zip(self.convs, self.norms):
            h = norm(L.to_norm(torch.relu(conv(L.to_conv(h)))))  # conv -> ReLU -> BN, the order of Sec. 2.1
        y = self.response_norm(L.to_norm(self.classifier(L.to_conv(h))))
        return y.reshape(B, self.classes, H, W)
