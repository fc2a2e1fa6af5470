"""JigsawGAN's networks (lib/models/jigsawgan.py), jigsaw task (lib/jigsaw.py) and losses
(the JigsawGAN section of lib/losses.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lib.jigsaw import (greedy_max_hamming, hamming_distances, hamming_summary, lexicographic_permutations,
                        permutation_set, random_shuffle, shuffle_tiles)
from lib.losses import code_form_jigsaw_floor, discriminator_loss, generator_loss, segmentation_loss
from lib.models import Discriminator, Generator, SegmentationNet


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------------------------
# networks


def test_generator_makes_64px_images_in_tanh_range():
    g = Generator(generator=seeded())
    x = g(torch.randn(5, 100, 1, 1, generator=seeded(1)))
    assert x.shape == (5, 3, 64, 64)
    assert x.min() >= -1 and x.max() <= 1
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.stride[0]) for m in convs] == [
        (100, 512, 1), (512, 256, 2), (256, 128, 2), (128, 64, 2), (64, 3, 2)]
    assert g(torch.randn(2, 100, generator=seeded(2))).shape == (2, 3, 64, 64)  # (N, latent) accepted too


def test_discriminator_trunk_widths_and_heads():
    d = Discriminator(30, sigmoid_heads=True, generator=seeded())
    x = torch.randn(4, 3, 64, 64, generator=seeded(1))
    assert d.trunk(x).shape == (4, 512, 4, 4)
    convs = [m for m in d.trunk if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(3, 64), (64, 128), (128, 256), (256, 512)]
    assert [type(m).__name__ for m in d.trunk][:5] == ["Conv2d", "LeakyReLU", "Conv2d", "BatchNorm2d", "LeakyReLU"]
    assert all(m.negative_slope == 0.2 for m in d.trunk if isinstance(m, nn.LeakyReLU))
    rf, jig = d(x)
    assert rf.shape == (4,) and jig.shape == (4, 30)
    assert 0 <= rf.min() and rf.max() <= 1 and 0 <= jig.min() and jig.max() <= 1


def test_logit_discriminator_is_the_sigmoid_one_without_its_sigmoids():
    probs = Discriminator(24, sigmoid_heads=True, generator=seeded(3))
    logits = Discriminator(24, sigmoid_heads=False, generator=seeded(3))
    assert same_weights(probs, logits)
    x = torch.randn(3, 3, 64, 64, generator=seeded(1))
    (p_rf, p_jig), (l_rf, l_jig) = probs(x), logits(x)
    assert torch.allclose(torch.sigmoid(l_rf), p_rf) and torch.allclose(torch.sigmoid(l_jig), p_jig)
    assert l_jig.shape == (3, 24)


def test_segmentation_net_shapes_and_softmax_form():
    x = torch.randn(2, 3, 64, 64, generator=seeded(1))
    logits = SegmentationNet(classes=3, generator=seeded())
    soft = SegmentationNet(classes=3, softmax_output=True, generator=seeded())
    assert same_weights(logits, soft)
    assert logits(x).shape == (2, 3, 64, 64)
    out = soft(x)
    assert torch.allclose(out.sum(1), torch.ones(2, 64, 64), atol=1e-5)
    assert torch.allclose(out, torch.softmax(logits(x), 1), atol=1e-6)
    decoder = [m for m in soft.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in decoder] == [(512, 256), (256, 128), (128, 64), (64, 3)]
    assert all(m.negative_slope == 0.01 for m in soft.decoder if isinstance(m, nn.LeakyReLU))


@pytest.mark.parametrize("build", [
    lambda g: Generator(generator=g),
    lambda g: Discriminator(30, generator=g),
    lambda g: SegmentationNet(generator=g),
])
def test_seeded_construction_is_reproducible_and_leaves_global_rng_alone(build):
    state = torch.get_rng_state()
    a, b = build(seeded(7)), build(seeded(7))
    assert torch.equal(state, torch.get_rng_state())
    assert same_weights(a, b)
    assert not same_weights(a, build(seeded(8)))


def test_segmentation_net_copies_the_discriminator_trunk():
    d = Discriminator(30, generator=seeded())
    net = SegmentationNet.from_discriminator(d, generator=seeded(1))
    assert same_weights(net.trunk, d.trunk)
    with torch.no_grad():
        next(net.trunk.parameters()).add_(1.0)
    assert not same_weights(net.trunk, d.trunk)  # a copy: fine-tuning leaves D as it was
    fresh = SegmentationNet(None, generator=seeded(1))  # the baseline: a fresh trunk
    assert not same_weights(fresh.trunk, d.trunk)


def _one_step(net: SegmentationNet) -> None:
    x = torch.randn(4, 3, 64, 64, generator=seeded(5))
    y = torch.randint(3, (4, 64, 64), generator=seeded(6))
    opt = torch.optim.Adam(net.trainable_parameters(), lr=1e-3)
    opt.zero_grad()
    segmentation_loss(net(x), y, net.softmax_output).backward()
    opt.step()


def test_frozen_trunk_gets_no_gradient_and_does_not_move():
    d = Discriminator(30, generator=seeded())
    net = SegmentationNet.from_discriminator(d, frozen=True, generator=seeded(1))
    trunk_ids = {id(p) for p in net.trunk.parameters()}
    assert not trunk_ids & {id(p) for p in net.trainable_parameters()}
    assert len(net.trainable_parameters()) == len(list(net.decoder.parameters()))
    trunk_before = {k: v.clone() for k, v in net.trunk.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in net.decoder.named_parameters()}
    _one_step(net)
    assert all(p.grad is None for p in net.trunk.parameters())
    for name, p in net.trunk.named_parameters():
        assert torch.equal(p, trunk_before[name]), name
    bn = next(m for m in net.trunk if isinstance(m, nn.BatchNorm2d))
    bn_name = next(n for n, m in net.trunk.named_children() if m is bn)
    # documented: a requires_grad freeze still lets BatchNorm's running statistics follow the data
    assert not torch.equal(bn.running_mean, trunk_before[f"{bn_name}.running_mean"])
    assert all(not torch.equal(p, decoder_before[n]) for n, p in net.decoder.named_parameters())


def test_trainable_trunk_moves():
    net = SegmentationNet(frozen=False, generator=seeded(1))
    assert len(net.trainable_parameters()) == len(list(net.parameters()))
    before = [p.clone() for p in net.trunk.parameters()]
    _one_step(net)
    assert all(not torch.equal(p, b) for p, b in zip(net.trunk.parameters(), before))


# --------------------------------------------------------------------------------------------
# permutations


def test_lexicographic_permutations_are_itertools_order():
    for n in range(1, 8):
        assert np.array_equal(lexicographic_permutations(n), np.array(list(itertools.permutations(range(n)))))


def test_four_tiles_use_all_24_permutations_whatever_n():
    perms = permutation_set(4)
    assert perms.dtype == torch.int64 and perms.shape == (24, 4)
    assert perms.tolist() == [list(p) for p in itertools.permutations(range(4))]
    assert torch.equal(permutation_set(4, n=30, seed=5), perms)
    summary = hamming_summary(perms)
    print("4 tiles, 24 permutations: Hamming", summary)
    assert summary["min"] == 2 and summary["max"] == 4


def _slow_greedy(n_items: int, n: int, seed: int) -> list[tuple[int, ...]]:
    """The authors' procedure written out plainly: a list of all permutations, pop the chosen
    one, Hamming distances by Python loops, ``np.argmax`` of their sums."""
    remaining = list(itertools.permutations(range(n_items)))
    chosen = [remaining.pop(int(np.random.default_rng(seed).integers(len(remaining))))]
    while len(chosen) < n:
        sums = [sum(sum(a != b for a, b in zip(p, q)) for q in chosen) for p in remaining]
        chosen.append(remaining.pop(int(np.argmax(sums))))
    return chosen


@pytest.mark.parametrize("n_items,n,seed", [(5, 30, 0), (5, 12, 3), (5, 120, 1), (4, 24, 2), (6, 40, 9)])
def test_vectorised_greedy_matches_the_slow_version(n_items, n, seed):
    fast = greedy_max_hamming(n_items, n, seed)
    assert [tuple(p) for p in fast.tolist()] == _slow_greedy(n_items, n, seed)


def test_nine_tile_set_is_30_distinct_greedy_permutations():
    perms = permutation_set(9, 30, seed=0)
    assert perms.shape == (30, 9) and perms.dtype == torch.int64
    assert all(sorted(p) == list(range(9)) for p in perms.tolist())
    assert len({tuple(p) for p in perms.tolist()}) == 30
    assert torch.equal(perms, permutation_set(9, 30, seed=0))
    assert not torch.equal(perms, permutation_set(9, 30, seed=1))
    # each choice maximises the sum of distances to those before it (first in itertools order on ties)
    everything = np.array(list(itertools.permutations(range(9))), dtype=np.int8)
    row = {tuple(p): i for i, p in enumerate(everything.tolist())}
    index = [row[tuple(p)] for p in perms.tolist()]
    total = np.zeros(len(everything), dtype=np.int64)
    for k in range(1, 30):
        total += (everything != everything[index[k - 1]]).sum(1)
        masked = total.copy()
        masked[index[:k]] = -1
        assert index[k] == int(np.argmax(masked)), k
    summary = hamming_summary(perms)
    print("9 tiles, 30 permutations (seed 0): Hamming", summary)
    assert summary["max"] == 9 and summary["mean"] > 8


def test_hamming_helpers():
    perms = torch.tensor([[0, 1, 2, 3], [1, 0, 2, 3], [3, 2, 1, 0]])
    assert hamming_distances(perms).tolist() == [[0, 2, 4], [2, 0, 4], [4, 4, 0]]
    assert hamming_summary(perms) == {"min": 2, "mean": pytest.approx(10 / 3), "max": 4}
    with pytest.raises(ValueError):
        hamming_summary(perms[:1])


def test_permutation_set_rejects_other_tile_counts():
    for tiles in (0, 3, 5, 16):
        with pytest.raises(ValueError, match="tiles"):
            permutation_set(tiles)
    with pytest.raises(ValueError, match="n="):
        permutation_set(9, n=0)


# --------------------------------------------------------------------------------------------
# shuffling


def _tile_index_image(n: int, size: int, side: int) -> torch.Tensor:
    """(n, 2, size, size): each grid tile holds its own index; the uncovered remainder holds 99."""
    t = size // side
    img = torch.full((n, 2, size, size), 99.0)
    for r in range(side):
        for c in range(side):
            img[:, :, r * t:(r + 1) * t, c * t:(c + 1) * t] = r * side + c
    return img


def _slow_shuffle(images: torch.Tensor, perms: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The authors' loop: output tile i <- input tile perm[i], everything else zero."""
    out = torch.zeros_like(images)
    side = math.isqrt(perms.shape[1])
    th, tw = images.shape[2] // side, images.shape[3] // side
    for n in range(len(images)):
        for i, src in enumerate(perms[index[n]].tolist()):
            r, c, sr, sc = i // side, i % side, src // side, src % side
            out[n, :, r * th:(r + 1) * th, c * tw:(c + 1) * tw] = images[n, :, sr * th:(sr + 1) * th,
                                                                         sc * tw:(sc + 1) * tw]
    return out


@pytest.mark.parametrize("tiles", [4, 9])
def test_tiles_land_where_the_permutation_says(tiles):
    side, size = math.isqrt(tiles), 64
    t = size // side
    perms = permutation_set(tiles)
    index = torch.tensor([0, 5, 17, len(perms) - 1])
    out = shuffle_tiles(_tile_index_image(4, size, side), perms, index)
    for n in range(4):
        for i in range(tiles):
            r, c = divmod(i, side)
            block = out[n, :, r * t:(r + 1) * t, c * t:(c + 1) * t]
            assert torch.all(block == perms[index[n], i]), (n, i)
    if tiles == 9:  # 64 = 3 * 21 + 1: the last row and column are not in any tile and come out 0
        assert torch.all(out[:, :, 63, :] == 0) and torch.all(out[:, :, :, 63] == 0)


@pytest.mark.parametrize("tiles,size", [(4, 64), (9, 64), (9, 10), (4, 7)])
def test_shuffle_matches_the_authors_loop(tiles, size):
    images = torch.randn(6, 3, size, size, generator=seeded(4))
    perms = permutation_set(tiles)
    index = torch.randint(len(perms), (6,), generator=seeded(5))
    assert torch.equal(shuffle_tiles(images, perms, index), _slow_shuffle(images, perms, index))


def test_identity_permutation_returns_the_image():
    images = torch.randn(3, 3, 64, 64, generator=seeded(4))
    perms = permutation_set(4)
    assert perms[0].tolist() == [0, 1, 2, 3]
    assert torch.equal(shuffle_tiles(images, perms, torch.zeros(3, dtype=torch.long)), images)


def test_gradients_flow_through_the_shuffle():
    perms = permutation_set(9)
    images = torch.randn(2, 3, 64, 64, generator=seeded(4), requires_grad=True)
    shuffle_tiles(images, perms, torch.tensor([3, 11])).sum().backward()
    expected = torch.ones(2, 3, 64, 64)
    expected[:, :, 63, :] = 0
    expected[:, :, :, 63] = 0  # the uncovered remainder does not reach the output
    assert torch.equal(images.grad, expected)
    small = torch.randn(2, 2, 7, 7, dtype=torch.double, generator=seeded(4), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: shuffle_tiles(x, perms, torch.tensor([1, 29])), (small,))


def test_random_shuffle_draws_labels_with_the_generator():
    perms = permutation_set(9)
    images = torch.randn(8, 3, 64, 64, generator=seeded(4))
    out, labels = random_shuffle(images, perms, seeded(10))
    again, labels2 = random_shuffle(images, perms, seeded(10))
    assert torch.equal(labels, labels2) and torch.equal(out, again)
    assert labels.dtype == torch.int64 and labels.shape == (8,) and 0 <= labels.min() and labels.max() < 30
    assert torch.equal(out, shuffle_tiles(images, perms, labels))


def test_shuffle_rejects_non_square_tile_counts():
    with pytest.raises(ValueError, match="square"):
        shuffle_tiles(torch.zeros(1, 3, 8, 8), torch.tensor([[0, 1, 2]]), torch.tensor([0]))


def test_permutation_set_runs_quickly_enough_to_call():
    permutation_set(9, 30, seed=123)  # a few tenths of a second (not asserted)


# --------------------------------------------------------------------------------------------
# losses


def test_floor_is_the_value_at_the_one_hot_optimum():
    for classes in (24, 30):
        one_hot = F.one_hot(torch.tensor([2]), classes).double()
        assert F.cross_entropy(one_hot, torch.tensor([2])).item() == pytest.approx(code_form_jigsaw_floor(classes))
    assert code_form_jigsaw_floor(30) == pytest.approx(2.4569, abs=1e-4)
    assert code_form_jigsaw_floor(30) == pytest.approx(-math.log(math.e / (math.e + 29)))


def _optimise(through_sigmoid: bool, steps: int = 300) -> list[float]:
    z = torch.zeros(16, 30, requires_grad=True)
    labels = torch.randint(30, (16,), generator=seeded(3))
    opt = torch.optim.Adam([z], lr=1.0)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(torch.sigmoid(z) if through_sigmoid else z, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_code_form_jigsaw_loss_never_falls_below_its_floor():
    floor = code_form_jigsaw_floor(30)
    losses = _optimise(through_sigmoid=True)
    assert min(losses) >= floor - 1e-6
    assert losses[-1] - floor < 1e-3 and losses[0] - floor > 0.5  # approaches it from above
    assert _optimise(through_sigmoid=False)[-1] < 1e-3  # logits: the corrected form can reach ~0


@pytest.mark.parametrize("sigmoid_heads", [True, False])
def test_gan_losses_include_the_jigsaw_term_only_with_perms(sigmoid_heads):
    g = Generator(generator=seeded(1))
    d = Discriminator(30 if sigmoid_heads else 24, sigmoid_heads=sigmoid_heads, generator=seeded(2))
    real = torch.rand(4, 3, 64, 64, generator=seeded(3)) * 2 - 1
    fake = g(torch.randn(4, 100, 1, 1, generator=seeded(4)))
    perms = permutation_set(4)

    plain, parts = discriminator_loss(d, real, fake)
    assert torch.isfinite(plain) and "jigsaw" not in parts
    assert plain.item() == pytest.approx((parts["rf_real"] + parts["rf_fake"]).item(), rel=1e-6)
    full, parts = discriminator_loss(d, real, fake, perms, alpha=1.0, generator=seeded(5))
    assert torch.isfinite(full) and {"jigsaw", "jigsaw_accuracy"} <= parts.keys()
    assert full.item() == pytest.approx((parts["rf_real"] + parts["rf_fake"] + parts["jigsaw"]).item(), rel=1e-6)
    if sigmoid_heads:
        assert parts["jigsaw"].item() >= code_form_jigsaw_floor(30)
    full.backward()
    assert all(p.grad is None for p in g.parameters())  # the fakes are detached in L_D
    assert all(not p.requires_grad or p.grad is not None for p in d.parameters())

    d.zero_grad()
    plain_g, parts = generator_loss(d, fake, beta=0.2)
    assert torch.isfinite(plain_g) and set(parts) == {"rf_fake"}
    g_plain = torch.autograd.grad(plain_g, list(g.parameters()), retain_graph=True)
    full_g, parts = generator_loss(d, fake, perms, beta=0.2, generator=seeded(6))
    assert torch.isfinite(full_g) and set(parts) == {"rf_fake", "jigsaw"}
    assert full_g.item() == pytest.approx((parts["rf_fake"] + 0.2 * parts["jigsaw"]).item(), rel=1e-6)
    g_full = torch.autograd.grad(full_g, list(g.parameters()))
    # the jigsaw term reaches G through the shuffled fakes
    assert any(not torch.allclose(a, b) for a, b in zip(g_plain, g_full))


def test_segmentation_loss_is_cross_entropy_in_both_forms():
    logits = torch.randn(2, 3, 8, 8, generator=seeded(1))
    target = torch.randint(3, (2, 8, 8), generator=seeded(2))
    assert torch.equal(segmentation_loss(logits, target, False), F.cross_entropy(logits, target))
    soft = torch.softmax(logits, 1)
    double = segmentation_loss(soft, target, True)
    assert torch.equal(double, F.cross_entropy(soft, target))
    assert double.item() >= code_form_jigsaw_floor(3) - 1e-6  # a softmax output is in [0, 1] too
