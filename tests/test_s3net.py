"""S3-Net: the batched network, the deformable convolution, the losses and the two forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import deform_conv2d

from lib.losses import (edge_aware_continuity, edge_disagreement_constant, head_consistency, pseudo_label_cross_entropy,
                        random_affine, transformation_consistency, warp)
from lib.methods import S3Net
from lib.methods.s3net import S3NetConfig
from lib.models.s3net import ILKA, DepthwiseConv2d, S3NetNetwork as S3NetModel, deform_conv3x3_sparse
from lib.runtime import generator

SMALL = dict(channels=6, classes=5, n_blocks=1)


@pytest.mark.parametrize("B, C, cout, H, W", [(2, 3, 4, 7, 9), (1, 5, 2, 6, 6)])
def test_sparse_deformable_convolution_equals_torchvision(B, C, cout, H, W):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, B * C, H, W, generator=g, requires_grad=True)
    offset = (2 * torch.randn(1, B * 18, H, W, generator=g)).requires_grad_()  # some taps land outside
    mask = torch.rand(1, B * 9, H, W, generator=g, requires_grad=True)
    w = torch.randn(B * cout, C, 3, 3, generator=g, requires_grad=True)
    ref = deform_conv2d(x, offset, w, padding=(1, 1), mask=mask)
    got = deform_conv3x3_sparse(x, offset, mask, w, groups=B)
    np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), atol=1e-4)
    upstream = torch.randn(ref.shape, generator=g)  # not all ones: every output weighs differently
    expected = torch.autograd.grad(ref, [x, offset, mask, w], upstream)
    for name, a, c in zip(["x", "offset", "mask", "weight"], expected, torch.autograd.grad(got, [x, offset, mask, w], upstream)):
        np.testing.assert_allclose(c.numpy(), a.numpy(), atol=1e-4, err_msg=name)


@pytest.mark.parametrize("offsets", ["paper", "code"])
def test_the_network_learns_the_same_with_either_deformable_convolution(offsets):
    """Inside the network too: every parameter's gradient is the same with the sparse form as
    with torchvision's op (the gradient reaching the layers before it once was not: a view the
    next BatchNorm's backward misread), and so is the dilated depthwise kernel on sub-grids. In
    double precision: in float32 the two orders of summation differ by ~1e-4 on gradients of ~0.02
    behind BatchNorm layers whose own gradients reach ~1000 (the rounding of the larger terms), so
    a float32 tolerance would depend on the processor."""
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def gradients(impl, polyphase):
        net = S3NetModel(1, offsets=offsets, size=24, generators=[generator(0)], deform_impl=impl,
                         channels=8, classes=5, n_blocks=2).double()
        for m in net.modules():
            if isinstance(m, DepthwiseConv2d):
                m.polyphase = polyphase
        y = net(x)
        weights = torch.linspace(-1, 1, y.numel(), dtype=torch.float64).reshape(y.shape)
        loss = (y * weights).sum() + net.aux.square().sum()
        return dict(zip([n for n, _ in net.named_parameters()],
                        torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)))

    expected = gradients("torchvision", False)
    got = gradients("sparse", True)
    for name, g in expected.items():
        if g is not None:
            torch.testing.assert_close(got[name], g, atol=1e-9, rtol=1e-7, msg=name)


def test_ilka_is_its_input_times_an_attention_map():
    m = ILKA(1, 4)
    with torch.no_grad():
        m.fuse.weight.zero_()
        m.fuse.bias.fill_(2.0)  # attention = 2 everywhere
    x = torch.randn(1, 4, 6, 6)
    np.testing.assert_allclose(m(x).detach().numpy(), 2 * x.numpy(), rtol=1e-6)


@pytest.mark.parametrize("offsets", ["paper", "code"])
def test_batched_networks_are_independent_and_equal_single_ones(offsets):
    x = torch.rand(2, 3, 16, 16)
    both = S3NetModel(2, offsets=offsets, size=16, generators=[generator(0, "a"), generator(0, "b")], **SMALL)
    one = S3NetModel(1, offsets=offsets, size=16, generators=[generator(0, "b")], **SMALL)
    y = both(x)
    np.testing.assert_allclose(one(x[1:])[0].detach().numpy(), y[1].detach().numpy(), atol=1e-5)
    x2 = x.clone()
    x2[1] = torch.rand(3, 16, 16)
    np.testing.assert_allclose(both(x2)[0].detach().numpy(), y[0].detach().numpy(), atol=1e-6)
    assert both.aux.shape == y.shape


def test_code_form_offsets_have_a_fixed_size():
    net = S3NetModel(1, offsets="code", size=16, **SMALL)
    with pytest.raises(ValueError, match="16x16"):
        net(torch.rand(1, 3, 20, 20))


def test_head_consistency_is_the_ce_between_heads_whatever_the_common_rotation():
    g = torch.Generator().manual_seed(1)
    r, aux = torch.randn(2, 5, 6, 8, generator=g), torch.randn(2, 5, 6, 8, generator=g)
    rotated = pseudo_label_cross_entropy(torch.rot90(aux, 1, (2, 3)), torch.rot90(r, 1, (2, 3)).argmax(1))
    np.testing.assert_allclose(head_consistency(r, aux).numpy(), rotated.numpy(), rtol=1e-6)


def test_code_form_edge_loss_has_no_gradient():
    r = torch.randn(1, 5, 8, 8, requires_grad=True)
    const = edge_disagreement_constant(r.argmax(1), torch.rand(1, 3, 8, 8))
    assert 0 < const.item() <= 1  # random labels on a random image: some disagreement
    ce = pseudo_label_cross_entropy(r, r.argmax(1)).sum()
    (g_ce,) = torch.autograd.grad(ce, r, retain_graph=True)
    (g_both,) = torch.autograd.grad(ce + 4.0 * const.sum(), r)
    assert torch.equal(g_ce, g_both)
    # and so training with it is training without it: identical labels, identical losses up to the constant
    image = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    kw = dict(form="code", size=24, iterations=4, min_labels=0, use_at=False, **SMALL)
    with_s = S3Net(use_s=True, **kw).run([image], [(0, "x")], torch.device("cpu"))[0]
    without = S3Net(use_s=False, **kw).run([image], [(0, "x")], torch.device("cpu"))[0]
    np.testing.assert_array_equal(with_s.labels, without.labels)


def test_transformation_consistency_with_the_identity_is_the_entropy():
    """With T = identity the prediction for T(x) is the prediction for x: the loss is the mean
    entropy of the softmax (no pixel leaves the image)."""
    net = S3NetModel(1, generators=[generator(0, "e")], **SMALL)
    x = torch.rand(1, 3, 12, 12)
    r = net(x)
    theta = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    loss = transformation_consistency(net, x, r, theta)
    p = torch.softmax(r, 1)
    entropy = -(p * torch.log_softmax(r, 1)).sum(1).mean()
    assert loss.item() == pytest.approx(entropy.item(), rel=1e-4)
    loss.sum().backward()
    assert net.stem.weight.grad.abs().sum() > 0


def test_random_affines_are_reproducible_and_in_range():
    a = random_affine([generator(1), generator(2)], rotation=15, scale=0.1, shift=0.05)
    b = random_affine([generator(1), generator(2)], rotation=15, scale=0.1, shift=0.05)
    torch.testing.assert_close(a, b)
    k = torch.linalg.det(a[:, :, :2]).sqrt()  # the isotropic scale
    assert ((k > 0.9 - 1e-6) & (k < 1.1 + 1e-6)).all()
    assert (a[:, :, 2].abs() <= 0.1 + 1e-6).all()


def test_edge_aware_continuity_on_a_flat_image_is_kims_continuity():
    from lib.losses import continuity_loss

    r = torch.randn(2, 4, 6, 7)
    flat = torch.full((2, 3, 6, 7), 0.5)
    np.testing.assert_allclose(edge_aware_continuity(r, flat).numpy(), continuity_loss(r).numpy(), rtol=1e-6)
    edge = flat.clone()
    edge[:, :, :, 4:] = 1.0  # a vertical edge: horizontal differences across it weigh exp(-0.5/0.1)
    assert (edge_aware_continuity(r, edge) < edge_aware_continuity(r, flat)).all()


def test_forms_and_stop_rule():
    paper, code = S3NetConfig.for_form("paper"), S3NetConfig.for_form("code")
    assert (paper.lr, code.lr) == (0.36, 0.2)
    assert (code.ce_weight, code.at_weight, code.s_weight) == (3.5, 0.2, 4.0)
    assert (code.offsets, code.size, code.bgr) == ("code", 256, True)
    assert paper.iterations == code.iterations == 50 and paper.min_iterations == code.min_iterations == 6
    image = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = S3Net(form="code", size=16, min_labels=10**6, **SMALL).run([image], [(0, "s")], torch.device("cpu"))[0]
    assert out.iterations == 6  # the code breaks after the update of batch_idx 5 (0-based) at the earliest
    assert S3Net(form="code", use_at=False).params()["losses"] == "CE+S" and S3Net().params()["losses"] == "CE+AT+S"
    assert S3Net(form="code", use_at=False).name == S3Net().name == "s3net"  # the losses are a column


def test_transformation_consistency_pulls_towards_the_transformed_prediction():
    """T = a 90° rotation and a 3x3 convolution (which does not commute with it): the loss is the
    CE between T(softmax f(x)) and f(T(x)), computed here with torch.rot90; the network sees the
    rotated input; and the value differs from any loss that leaves x untransformed."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    seen = []

    def net(t):
        seen.append(t.detach().clone())
        return conv(t)

    x = torch.rand(1, 3, 8, 8)
    theta = torch.tensor([[[0.0, -1, 0], [1, 0, 0]]])
    k = next(k for k in (1, -1) if torch.allclose(warp(x, theta), torch.rot90(x, k, (2, 3)), atol=1e-6))
    rotate = lambda t: torch.rot90(t, k, (2, 3))  # noqa: E731
    r = conv(x)
    loss = transformation_consistency(net, x, r, theta)
    expected = -(rotate(torch.softmax(r, 1)) * torch.log_softmax(conv(rotate(x)), 1)).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(seen[-1], rotate(x), atol=1e-6, rtol=0)
    untransformed = -(torch.softmax(r, 1) * torch.log_softmax(r, 1)).sum(1).mean()  # T = identity: the entropy
    assert abs(loss.item() - untransformed.item()) > 1e-3


def test_the_network_is_the_authors_layer_order_and_initialisation():
    """The auxiliary head reads the blocks' output (before the deformable convolution), as in the
    code; the code form draws its deformable weights, offsets and mask in [0, 1); the paper form's
    offset predictor starts at zero."""
    x = torch.rand(1, 3, 16, 16)
    code = S3NetModel(1, offsets="code", size=16, generators=[generator(0, "c")], **SMALL)
    for p in (code.deform.weight, code.deform.offset, code.deform.mask):
        assert 0 <= p.min() and p.max() < 1 and p.std() > 0.2
    y, aux = code(x), code.aux.clone()
    with torch.no_grad():
        code.deform.weight.mul_(-1)
    y2 = code(x)
    torch.testing.assert_close(code.aux, aux)
    assert not torch.allclose(y2, y)
    paper = S3NetModel(1, offsets="paper", generators=[generator(0, "p")], **SMALL)
    assert paper.deform.predict.weight.abs().sum() == 0 and paper.deform.predict.bias.abs().sum() == 0
    assert not any(isinstance(m, torch.nn.ReLU) for m in paper.modules())
