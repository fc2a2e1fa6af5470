"""The JigsawGAN benchmark: both stages timed for the study and the reference (tiny settings, no
timing assertions), and the reference's Python-loop shuffler doing the study's arithmetic."""

import math

import numpy as np
import torch

from lib import data
from lib.benchmark import reference_shuffle_image, time_jigsawgan
from lib.jigsaw import permutation_set, shuffle_tiles


def test_jigsawgan_benchmark_returns_rates_and_ratios():
    samples = list(data.load("synthetic_pets", n=16, size=(64, 64)))
    result = time_jigsawgan(samples, samples, batches=1, device=torch.device("cpu"))
    for stage in ("pretrain", "finetune"):
        study = result[f"study_{stage}_images_per_second"]
        reference = result[f"reference_{stage}_images_per_second"]
        assert study > 0 and reference > 0
        assert math.isclose(result[f"{stage}_study_over_reference"], study / reference)


def test_reference_shuffler_equals_shuffle_tiles():
    for tiles, side in ((9, 64), (4, 64), (9, 66)):
        perms = permutation_set(tiles)
        images = torch.randn(5, 3, side, side, generator=torch.Generator().manual_seed(tiles + side))
        index = torch.tensor([0, 3, len(perms) - 1, 7, 3])
        expected = shuffle_tiles(images, perms, index)
        got, used = reference_shuffle_image(images, tiles, perms.tolist(), index)
        assert torch.equal(got, expected)
        assert used.tolist() == index.tolist()


def test_reference_shuffler_draws_with_numpy():
    perms = permutation_set(9)
    images = torch.arange(2 * 3 * 64 * 64, dtype=torch.float32).reshape(2, 3, 64, 64)
    np.random.seed(1)
    got, used = reference_shuffle_image(images, 9, perms.tolist())
    assert torch.equal(got, shuffle_tiles(images, perms, used))
