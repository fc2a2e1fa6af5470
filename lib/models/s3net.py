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
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import layout
from ..layout import Layout


def _grouped(B: int, cin: int, cout: int, k: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(B * cin, B * cout, k, padding=dilation * (k // 2), dilation=dilation, groups=B)


def _depthwise(B: int, c: int, k: int, dilation: int = 1) -> nn.Conv2d:
    return DepthwiseConv2d(B * c, B * c, k, padding=dilation * (k // 2), dilation=dilation, groups=B * c)


def depthwise_same(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int,
                   polyphase: bool = False) -> torch.Tensor:
    """A depthwise k x k convolution, stride 1, "same" padding ``dilation * (k // 2)``.

    ``polyphase``: the same sums computed on the d x d interleaved sub-grids of the padded input
    (``pixel_unshuffle``): a tap ``d * i`` rows away in the image is ``i`` rows away in its
    sub-grid, so each sub-grid sees an undilated k x k kernel; ``pixel_shuffle`` puts the outputs
    back in place. oneDNN runs some dilated kernels far slower than undilated ones (7x7, d = 3:
    97 against 31 ms at 256 x 256 x 64 on a 2-core AMD EPYC); :class:`DepthwiseConv2d` measures.
    """
    k, d = weight.shape[-1], dilation
    pad = d * (k // 2)
    if not polyphase or d == 1:
        return F.conv2d(x, weight, bias, padding=pad, dilation=d, groups=x.shape[1])
    _, C, H, W = x.shape
    extra_h, extra_w = -(H + 2 * pad) % d, -(W + 2 * pad) % d  # sub-grids of equal size
    sub = F.pixel_unshuffle(F.pad(x, (pad, pad + extra_w, pad, pad + extra_h)), d)  # (1, C d^2, ., .)
    y = F.conv2d(sub, weight.repeat_interleave(d * d, 0), None if bias is None else bias.repeat_interleave(d * d),
                 groups=C * d * d)
    return F.pixel_shuffle(y, d)[:, :, :H, :W]


class _DepthwiseBackward(torch.autograd.Function):
    """:func:`depthwise_same` whose backward pass is written as two more convolutions, the same
    sums in another order:

    - grad input: the gradient convolved with the flipped kernels (a transposed convolution of
      stride 1 is a convolution with the kernel flipped), itself depthwise;
    - grad weight: ``dL/dw[c, i, j] = sum_(n, y, x) x_pad[n, c, y + d i, x + d j] g[n, c, y, x]``, a
      convolution of the padded input with the gradient as its (H x W) kernel, stride d.

    On CPU, PyTorch's own depthwise backward (oneDNN) takes 3-30x the forward time for the I-LKA
    kernels (5x5, 5x5 dilation 2, 7x7 dilation 3 at 256 x 256 x 64): both of these run at the
    speed of forward convolutions. A test checks values and gradients against ``nn.Conv2d``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, dilation: int, polyphase: bool):
        ctx.save_for_backward(x, weight)
        ctx.dilation, ctx.polyphase, ctx.has_bias = dilation, polyphase, bias is not None
        return depthwise_same(x, weight, bias, dilation, polyphase)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        d, k = ctx.dilation, weight.shape[-1]
        pad = d * (k // 2)
        N, C, H, W = x.shape
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = depthwise_same(grad, weight.flip(2, 3), None, d, ctx.polyphase)
        if ctx.needs_input_grad[1]:
            x_pad = F.pad(x.contiguous(), (pad, pad, pad, pad))  # NCHW: the fast layout for this one
            inputs = x_pad.transpose(0, 1).reshape(1, C * N, H + 2 * pad, W + 2 * pad)
            kernels = grad.contiguous().transpose(0, 1).reshape(C, N, H, W)  # sums over the batch too
            grad_w = F.conv2d(inputs, kernels, stride=d, groups=C).reshape(C, 1, k, k)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` with ``groups == channels`` that on CPU runs :class:`_DepthwiseBackward` and,
    for a dilated kernel, whichever of the dilated and the polyphase form of
    :func:`depthwise_same` is measured faster on the machine (``lib.layout.fastest``, once per
    kernel and input shape; ``polyphase`` set to True or False forces one). On CUDA, cuDNN's own.
    """

    polyphase: bool | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:
            return super().forward(x)
        polyphase = self.polyphase
        if polyphase is None:  # measured (or read from the cache) once per input shape and layout
            forms = self.__dict__.setdefault("_forms", {})
            key = (tuple(x.shape), _memory_format(x))
            if key not in forms:
                forms[key] = self._polyphase(x)
            polyphase = forms[key]
        if not torch.is_grad_enabled():
            return depthwise_same(x, self.weight, self.bias, self.dilation[0], polyphase)
        return _DepthwiseBackward.apply(x, self.weight, self.bias, self.dilation[0], polyphase)

    def _polyphase(self, x: torch.Tensor) -> bool:
        d, k = self.dilation[0], self.kernel_size[0]
        if d == 1:
            return False
        with torch.no_grad():
            w, b, sample = self.weight.detach(), self.bias, x.detach()
            steps = {form: lambda p=(form == "polyphase"): depthwise_same(sample, w, b, d, p)
                     for form in ("dilated", "polyphase")}
            name = f"depthwise {k}x{k} dilation {d} | input {tuple(x.shape)} {_memory_format(x)}"
            return layout.fastest(name, steps, x.device) == "polyphase"


def _format_of(x: torch.Tensor) -> torch.memory_format:
    """channels-last for a tensor stored that way (and not also NCHW-contiguous), else NCHW."""
    if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
        return torch.contiguous_format
    return torch.channels_last


def _memory_format(x: torch.Tensor) -> str:
    return "nchw" if _format_of(x) == torch.contiguous_format else "channels_last"


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


def _sampling_matrix(offset: torch.Tensor, mask: torch.Tensor, B: int, H: int, W: int):
    """The bilinear sampling of a 3x3 deformable convolution as a sparse matrix.

    Row ``(b, p, k)`` samples model ``b``'s input at pixel ``p`` shifted by tap ``k`` (row-major
    3x3, ``(dy, dx)`` pairs in ``offset`` as torchvision orders them) and its offset; its four
    entries are the bilinear weights of the four neighbouring pixels times the modulation mask,
    zero for a neighbour outside the image. Returns the CSR matrix ``(B*H*W*9, B*H*W)`` and what
    the backward pass needs: the fractional parts ``(fy, fx)``, the corners' validity and the
    mask, each ``(B*H*W*9, ...)``.
    """
    HW, device = H * W, offset.device
    off = offset.reshape(B, 9, 2, H, W).permute(0, 3, 4, 1, 2)  # (B, H, W, 9, 2): rows (b, p, k)
    tap = torch.arange(9, device=device)
    py = torch.arange(H, device=device).reshape(1, H, 1, 1) + (tap // 3 - 1) + off[..., 0]
    px = torch.arange(W, device=device).reshape(1, 1, W, 1) + (tap % 3 - 1) + off[..., 1]
    y0, x0 = py.floor(), px.floor()
    fy, fx = (py - y0).reshape(-1, 1), (px - x0).reshape(-1, 1)
    # the four neighbours (y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)
    ys = y0.long().reshape(-1, 1) + torch.tensor([0, 0, 1, 1], device=device)
    xs = x0.long().reshape(-1, 1) + torch.tensor([0, 1, 0, 1], device=device)
    valid = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
    block = (torch.arange(B, device=device) * HW).repeat_interleave(HW * 9).reshape(-1, 1)
    cols = block + torch.where(valid, ys * W + xs, 0)  # an outside neighbour: any column, weight 0
    bilinear = torch.cat([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], 1) * valid
    m = mask.reshape(B, 9, HW).transpose(1, 2).reshape(-1, 1)
    crow = torch.arange(0, cols.numel() + 1, 4, device=device)
    S = _csr(crow, cols.reshape(-1), (bilinear * m).reshape(-1), (cols.shape[0], B * HW))
    return S, fy, fx, valid, m


def _csr(crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the products used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, size=size, check_invariants=False)


def _transposed(S: torch.Tensor) -> torch.Tensor:
    """``S^T`` of a CSR matrix with 4 entries per row, in CSR: its entries sorted by column (a
    stable sort of 32-bit keys, about twice as fast as torch's own conversion of ``S.t()``)."""
    rows, cols = S.shape
    col = S.col_indices()
    order = torch.argsort(col.int() if cols < 2**31 else col, stable=True)
    crow = torch.zeros(cols + 1, dtype=torch.long, device=col.device)
    torch.cumsum(torch.bincount(col, minlength=cols), 0, out=crow[1:])
    return _csr(crow, order // 4, S.values()[order], (cols, rows))


class _SparseDeformConv3x3(torch.autograd.Function):
    """``torchvision.ops.deform_conv2d`` (3x3, stride 1, padding 1, no bias, ``B`` weight and
    offset groups) as a sparse-times-dense product and a batched matrix product:

        taps = S x          S: the bilinear samples times the mask (:func:`_sampling_matrix`)
        out  = taps W       W: the 3x3 weights as a (9 C) x C_out matrix per model

    and its backward pass written out: ``dx = S^T (dout W^T)``; ``dW = taps^T dout``; and for the
    mask and the offsets the dot product of ``dtaps`` with each of the four neighbours' features,
    one sampled dense-dense product (``torch.sparse.sampled_addmm``), times the bilinear weights
    or their derivatives. The same sums as the op (a test checks outputs and gradients); on a
    CPU each step reads whole rows of C features, where ``grid_sample`` gathers one feature at
    a time (about 3x faster at 256 x 256 x 64 on a 2-core AMD EPYC).
    """

    @staticmethod
    def forward(ctx, x, offset, mask, weight, B: int):
        _, BC, H, W = x.shape
        C, cout, HW = BC // B, weight.shape[0] // B, H * W
        rows = x.reshape(B, C, HW).transpose(1, 2).reshape(B * HW, C)  # pixels x features
        S, fy, fx, valid, m = _sampling_matrix(offset, mask, B, H, W)
        taps = (S @ rows).reshape(B, HW, 9 * C)  # per pixel: 9 taps x C features
        w = weight.reshape(B, cout, C, 9).permute(0, 3, 2, 1).reshape(B, 9 * C, cout)
        out = torch.bmm(taps, w)  # (B, HW, cout)
        ctx.save_for_backward(rows, taps, w, fy, fx, valid, m)
        ctx.S, ctx.shape, ctx.format = S, (B, C, cout, H, W), _format_of(x)
        # in the input's memory format, as a convolution's output (see the backward pass)
        return out.transpose(1, 2).reshape(1, B * cout, H, W).contiguous(memory_format=ctx.format)

    @staticmethod
    def backward(ctx, grad):
        rows, taps, w, fy, fx, valid, m = ctx.saved_tensors
        S, (B, C, cout, H, W) = ctx.S, ctx.shape
        HW = H * W
        g = grad.reshape(B, cout, HW).transpose(1, 2)  # (B, HW, cout)
        grad_w = torch.bmm(taps.transpose(1, 2), g)  # (B, 9C, cout)
        grad_w = grad_w.reshape(B, 9, C, cout).permute(0, 3, 2, 1).reshape(B * cout, C, 3, 3)
        grad_taps = torch.bmm(g, w.transpose(1, 2)).reshape(B * HW * 9, C)
        grad_x = (_transposed(S) @ grad_taps).reshape(B, HW, C).transpose(1, 2).reshape(1, B * C, H, W)
        # a fresh tensor in the input's memory format: BatchNorm's CPU backward (torch 2.13) returns
        # wrong values for a gradient that is a channels-last view whose size-1 batch dimension
        # has an unusual stride, as the reshape above gives (tests/test_s3net.py checks)
        grad_x = grad_x.contiguous(memory_format=ctx.format)
        # dots[r, j] = <dtaps of row r, features of its neighbour j>: S's pattern, new values
        dots = torch.sparse.sampled_addmm(S, grad_taps, rows.t(), beta=0.0).values().reshape(-1, 4) * valid
        grad_mask = (dots * torch.cat([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], 1)).sum(1)
        grad_fy = m[:, 0] * (dots * torch.cat([fx - 1, -fx, 1 - fx, fx], 1)).sum(1)
        grad_fx = m[:, 0] * (dots * torch.cat([fy - 1, 1 - fy, -fy, fy], 1)).sum(1)
        grad_offset = torch.stack([grad_fy, grad_fx], 1).reshape(B, H, W, 9, 2).permute(0, 3, 4, 1, 2)
        grad_mask = grad_mask.reshape(B, HW, 9).transpose(1, 2)
        return (grad_x, grad_offset.reshape(1, B * 18, H, W), grad_mask.reshape(1, B * 9, H, W), grad_w, None)


def deform_conv3x3_sparse(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                          groups: int) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d(x, offset, weight, padding=(1, 1), mask=mask)`` with
    ``groups`` weight and offset groups, computed by :class:`_SparseDeformConv3x3`."""
    return _SparseDeformConv3x3.apply(x, offset, mask, weight, groups)


class DeformConv(nn.Module):
    """A batched 3x3 deformable convolution with predicted (``paper``) or free (``code``) offsets.

    ``impl``: ``"torchvision"`` (``torchvision.ops.deform_conv2d``), ``"sparse"``
    (:func:`deform_conv3x3_sparse`, the same arithmetic) or ``"auto"`` (the op on CUDA, the
    sparse form on CPU, where it is faster).
    """

    def __init__(self, B: int, c: int, offsets: str = "paper", size: int = 256, impl: str = "auto"):
        super().__init__()
        if impl not in ("auto", "torchvision", "sparse"):
            raise ValueError(f"impl={impl!r}: use 'auto', 'torchvision' or 'sparse'")
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
        return deform_conv3x3_sparse(x, offset, mask, self.weight, self.B)


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
