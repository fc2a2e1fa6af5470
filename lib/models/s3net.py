"""The network of S3-Net (Karimijafarbigloo et al., "Self-supervised semantic segmentation:
consistency over transformation", ICCV workshops 2023), as a batch of independent models.

The paper names its parts — I-LKA (inception large-kernel attention) modules and a deformable
convolution — without drawing the network. The authors' code (SSCT @07760c7: ``S3Net.ipynb`` and
``model_utils.py``; facts in ``shared/docs/papers.md``) gives the network, which both forms use:

- stem: 3x3 conv -> BN;
- ``n_blocks`` (2) blocks, each followed by a BN: 1x1 -> GELU -> I-LKA -> 1x1 with a residual, where
  I-LKA is a depthwise 5x5 convolution, three parallel depthwise convolutions (3x3 dilation 1, 5x5
  dilation 2, 7x7 dilation 3) concatenated, a 1x1 convolution, and the result multiplied with the
  module's input (an attention map);
- an auxiliary head on the blocks' output: 1x1 -> BN (used only by the code's form of L_AT);
- a deformable 3x3 convolution without bias (``torchvision.ops.deform_conv2d``) -> BN;
- the classifier: 1x1 to q channels -> BN, whose argmax gives the labels;
- no ReLU anywhere; every BN with PyTorch's default learnable affine; 64 channels, q = 64.

Deformable offsets, two forms:
- ``paper``: offsets and modulation mask predicted from the features by a 3x3 convolution
  (deformable ConvNets v2: zero-initialised, mask = sigmoid, so it starts as a plain convolution
  with weight 1/2), deformable weights with PyTorch's default initialisation; the network works at
  any size and batch;
- ``code``: offsets and mask are free parameters of a fixed spatial size (the authors' 256 x 256)
  and, as the code draws them, the deformable weights, offsets and mask all start uniform in
  [0, 1) (``torch.rand``): every tap shifted by up to one pixel down and right, all weights positive.

Batching as in ``kanezaki2018.py``: B models in grouped convolutions; depthwise layers have
B * C groups; the deformable convolution has B weight groups and B offset groups.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layout import Layout


def _grouped(B: int, cin: int, cout: int, k: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(B * cin, B * cout, k, padding=dilation * (k // 2), dilation=dilation, groups=B)


def _depthwise(B: int, c: int, k: int, dilation: int = 1) -> nn.Conv2d:
    return DepthwiseConv2d(B * c, B * c, k, padding=dilation * (k // 2), dilation=dilation, groups=B * c)


class _DepthwiseBackward(torch.autograd.Function):
    """A depthwise k x k convolution (stride 1, "same" padding d * (k // 2), dilation d) whose
    backward pass is written as two more convolutions, the same sums in another order:

    - grad input: the gradient convolved with the flipped kernels (a transposed convolution of
      stride 1 is a convolution with the kernel flipped), itself depthwise;
    - grad weight: ``dL/dw[c, i, j] = sum_(n, y, x) x_pad[n, c, y + d i, x + d j] g[n, c, y, x]``, a
      convolution of the padded input with the gradient as its (H x W) kernel, stride d.

    On CPU, PyTorch's own depthwise backward (oneDNN) takes 3-30x the forward time for the I-LKA
    kernels (5x5, 5x5 dilation 2, 7x7 dilation 3 at 256 x 256 x 64): both of these run at the
    speed of forward convolutions. A test checks values and gradients against ``nn.Conv2d``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, dilation: int):
        ctx.save_for_backward(x, weight)
        ctx.dilation, ctx.has_bias = dilation, bias is not None
        k = weight.shape[-1]
        return F.conv2d(x, weight, bias, padding=dilation * (k // 2), dilation=dilation, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        d, k = ctx.dilation, weight.shape[-1]
        pad = d * (k // 2)
        N, C, H, W = x.shape
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight.flip(2, 3), padding=pad, dilation=d, groups=C)
        if ctx.needs_input_grad[1]:
            x_pad = F.pad(x.contiguous(), (pad, pad, pad, pad))  # NCHW: the fast layout for this one
            inputs = x_pad.transpose(0, 1).reshape(1, C * N, H + 2 * pad, W + 2 * pad)
            kernels = grad.contiguous().transpose(0, 1).reshape(C, N, H, W)  # sums over the batch too
            grad_w = F.conv2d(inputs, kernels, stride=d, groups=C).reshape(C, 1, k, k)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` with ``groups == channels`` whose backward on CPU is :class:`_DepthwiseBackward`
    (on CUDA, cuDNN's own is kept)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda or not torch.is_grad_enabled():
            return super().forward(x)
        return _DepthwiseBackward.apply(x, self.weight, self.bias, self.dilation[0])


class ILKA(nn.Module):
    """Inception large-kernel attention on ``(1, B*C, H, W)``."""

    def __init__(self, B: int, c: int):
        super().__init__()
        self.B, self.c = B, c
        self.local = _depthwise(B, c, 5)
        self.branches = nn.ModuleList([_depthwise(B, c, 3, 1), _depthwise(B, c, 5, 2), _depthwise(B, c, 7, 3)])
        self.fuse = _grouped(B, 3 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.local(x)
        parts = torch.stack([branch(h) for branch in self.branches], 1)  # (1, 3, B*C, H, W)
        _, _, _, H, W = parts.shape
        # regroup so that each model's three branches are adjacent: (1, B*3*C, H, W)
        parts = parts.view(1, 3, self.B, self.c, H, W).transpose(1, 2).reshape(1, self.B * 3 * self.c, H, W)
        return x * self.fuse(parts)


class ILKABlock(nn.Module):
    def __init__(self, B: int, c: int):
        super().__init__()
        self.inp, self.attn, self.out = _grouped(B, c, c), ILKA(B, c), _grouped(B, c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.attn(nn.functional.gelu(self.inp(x))))


def deform_conv3x3_sampled(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                           bias: torch.Tensor | None, groups: int) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d`` (3x3, stride 1, padding 1, ``groups`` weight and offset
    groups) computed with ``grid_sample``: each kernel tap is a bilinear sample of the input at its
    shifted position (zero outside, as the torchvision op), times its mask, followed by one batched
    matrix product. Same arithmetic — a test checks outputs and gradients against the op — and
    about 5x faster than the op's CPU kernel at 256 x 256 x 64.
    """
    _, BC, H, W = x.shape
    B, C, cout = groups, BC // groups, weight.shape[0] // groups
    ky, kx = torch.meshgrid(torch.arange(-1, 2, device=x.device), torch.arange(-1, 2, device=x.device), indexing="ij")
    off = offset.reshape(B, 9, 2, H, W)  # (dy, dx) per tap, taps in row-major order
    py = torch.arange(H, device=x.device).reshape(1, 1, H, 1) + ky.reshape(1, 9, 1, 1) + off[:, :, 0]
    px = torch.arange(W, device=x.device).reshape(1, 1, 1, W) + kx.reshape(1, 9, 1, 1) + off[:, :, 1]
    grid = torch.stack([2 * px / max(W - 1, 1) - 1, 2 * py / max(H - 1, 1) - 1], -1).reshape(B, 9 * H, W, 2)
    taps = F.grid_sample(x.reshape(B, C, H, W), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    taps = taps.reshape(B, C, 9, H, W) * mask.reshape(B, 1, 9, H, W)
    out = torch.bmm(weight.reshape(B, cout, C * 9), taps.reshape(B, C * 9, H * W))
    if bias is not None:
        out = out + bias.reshape(B, cout, 1)
    return out.reshape(1, B * cout, H, W)


class DeformConv(nn.Module):
    """A batched 3x3 deformable convolution with predicted (``paper``) or free (``code``) offsets.

    ``impl``: ``"torchvision"`` (``torchvision.ops.deform_conv2d``), ``"grid_sample"``
    (:func:`deform_conv3x3_sampled`, the same arithmetic) or ``"auto"`` (the op on CUDA, the
    sampled form on CPU, where it is faster).
    """

    def __init__(self, B: int, c: int, offsets: str = "paper", size: int = 256, impl: str = "auto"):
        super().__init__()
        if impl not in ("auto", "torchvision", "grid_sample"):
            raise ValueError(f"impl={impl!r}: use 'auto', 'torchvision' or 'grid_sample'")
        self.B, self.offsets, self.size, self.impl = B, offsets, size, impl
        self.weight = nn.Parameter(torch.empty(B * c, c, 3, 3))  # no bias: a BN follows (as in the code)
        if offsets == "paper":
            self.predict = _grouped(B, c, 27, 3)  # 18 offsets + 9 mask logits per model
            nn.init.zeros_(self.predict.weight)
            nn.init.zeros_(self.predict.bias)
        elif offsets == "code":
            self.offset = nn.Parameter(torch.empty(1, B * 18, size, size))  # drawn in S3NetNetwork._initialise
            self.mask = nn.Parameter(torch.empty(1, B * 9, size, size))
        else:
            raise ValueError(f"offsets={offsets!r}: use 'paper' (predicted) or 'code' (free parameters)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, H, W = x.shape
        if self.offsets == "paper":
            om = self.predict(x).view(1, self.B, 27, H, W)
            offset = om[:, :, :18].reshape(1, self.B * 18, H, W)
            mask = torch.sigmoid(om[:, :, 18:]).reshape(1, self.B * 9, H, W)
        else:
            if (H, W) != (self.size, self.size):
                raise ValueError(f"the code form's free offsets are {self.size}x{self.size}; got a {H}x{W} input "
                                 "(the authors resize every image to 256x256)")
            offset, mask = self.offset, self.mask
        if self.impl == "torchvision" or (self.impl == "auto" and x.is_cuda):
            from torchvision.ops import deform_conv2d  # imported here: torchvision takes seconds to import

            return deform_conv2d(x, offset, self.weight, padding=(1, 1), mask=mask)
        return deform_conv3x3_sampled(x, offset, mask, self.weight, None, self.B)


class S3NetNetwork(nn.Module):
    """B independent S3-Net networks: ``(B, 3, H, W)`` -> ``(B, q, H, W)`` normalised responses.

    The auxiliary head's normalised responses of the last forward pass are in ``self.aux``.
    ``response_affine=False`` makes the classifier's BN a pure whitening (an ablation; the code's
    BN has the affine).
    """

    def __init__(self, n_models: int = 1, channels: int = 64, classes: int = 64, n_blocks: int = 2,
                 offsets: str = "paper", size: int = 256, generators: Sequence[torch.Generator] | None = None,
                 deform_impl: str = "auto", response_affine: bool = True):
        super().__init__()
        B, c = n_models, channels
        self.n_models, self.classes = B, classes

        def norm(channels: int, affine: bool = True) -> nn.BatchNorm2d:
            return nn.BatchNorm2d(B * channels, affine=affine, track_running_stats=False)

        self.stem, self.stem_norm = _grouped(B, 3, c, 3), norm(c)
        self.blocks = nn.ModuleList([ILKABlock(B, c) for _ in range(n_blocks)])
        self.block_norms = nn.ModuleList([norm(c) for _ in range(n_blocks)])
        self.aux_head, self.aux_norm = _grouped(B, c, classes), norm(classes, response_affine)
        self.deform, self.deform_norm = DeformConv(B, c, offsets, size, deform_impl), norm(c)
        self.head, self.head_norm = _grouped(B, c, classes), norm(classes, response_affine)
        self.aux: torch.Tensor | None = None
        self.layout = Layout()  # set by the loop from a measurement (lib/layout.py)
        self._initialise(list(generators) if generators is not None else [None] * B)

    @torch.no_grad()
    def _initialise(self, generators: Sequence[torch.Generator | None]) -> None:
        """PyTorch's default convolution initialisation, drawn per model from its own generator;
        the deformable layer's weights (and, in the code form, its offsets and mask) as described in
        the module docstring."""
        B = self.n_models
        weights = [m for m in self.modules() if isinstance(m, nn.Conv2d) and m is not getattr(self.deform, "predict", None)]
        for w_owner in weights:
            w, bias = w_owner.weight, w_owner.bias
            per = w.shape[0] // B
            for b, g in enumerate(generators):
                nn.init.kaiming_uniform_(w[b * per : (b + 1) * per], a=math.sqrt(5), generator=g)
                bound = 1 / math.sqrt(w[0].numel())
                nn.init.uniform_(bias[b * per : (b + 1) * per], -bound, bound, generator=g)
        d = self.deform
        per = d.weight.shape[0] // B
        for b, g in enumerate(generators):
            if d.offsets == "paper":
                nn.init.kaiming_uniform_(d.weight[b * per : (b + 1) * per], a=math.sqrt(5), generator=g)
            else:  # the code's torch.rand for weight, offset and mask
                nn.init.uniform_(d.weight[b * per : (b + 1) * per], 0.0, 1.0, generator=g)
                nn.init.uniform_(d.offset[:, b * 18 : (b + 1) * 18], 0.0, 1.0, generator=g)
                nn.init.uniform_(d.mask[:, b * 9 : (b + 1) * 9], 0.0, 1.0, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        if B != self.n_models:
            raise ValueError(f"input of batch {B} for {self.n_models} models")
        L = self.layout
        h = self.stem_norm(L.to_norm(self.stem(L.to_conv(x.reshape(1, B * C, H, W)))))
        for block, block_norm in zip(self.blocks, self.block_norms):
            h = block_norm(L.to_norm(block(L.to_conv(h))))
        self.aux = self.aux_norm(L.to_norm(self.aux_head(L.to_conv(h)))).reshape(B, self.classes, H, W)
        h = self.deform_norm(L.to_norm(self.deform(L.to_conv(h))))
        return self.head_norm(L.to_norm(self.head(L.to_conv(h)))).reshape(B, self.classes, H, W)
