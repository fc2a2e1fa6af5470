"""The superpixel refinement of Kanezaki 2018: batched majority vote and SLIC wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.data.synthetic import SyntheticScenes
from lib.superpixels import SuperpixelVote, majority_vote_reference, slic_superpixels


def _compact(labels: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape)


def test_vote_hand_case_with_ties():
    superpixels = np.array([
        [0, 0, 1, 1, 2],
        [0, 0, 1, 1, 2],
    ])
    labels = np.array([
        [4, 2, 3, 3, 1],
        [2, 4, 1, 0, 0],
    ])
    # superpixel 0: {4, 2, 2, 4} -> tie between 2 and 4 -> the smaller label, 2
    # superpixel 1: {3, 3, 1, 0} -> 3 (majority)
    # superpixel 2: {1, 0}       -> tie -> 0
    expected = np.array([
        [2, 2, 3, 3, 0],
        [2, 2, 3, 3, 0],
    ])
    np.testing.assert_array_equal(majority_vote_reference(labels, superpixels), expected)
    vote = SuperpixelVote([superpixels], classes=5)
    out = vote(torch.from_numpy(labels)[None])
    assert out.shape == (1, 2, 5)
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_vote_does_not_mix_images_of_a_batch():
    # the same superpixel map for both images; votes must be counted per image
    superpixels = np.zeros((2, 2), int)
    labels = torch.tensor([
        [[1, 1], [1, 0]],  # image 0: majority 1
        [[0, 0], [0, 1]],  # image 1: majority 0 (pooled over both images it would be a tie -> 0)
    ])
    out = SuperpixelVote([superpixels, superpixels], classes=2)(labels)
    np.testing.assert_array_equal(out[0].numpy(), np.ones((2, 2)))
    np.testing.assert_array_equal(out[1].numpy(), np.zeros((2, 2)))


@pytest.mark.parametrize("seed", range(5))
def test_vote_equals_reference_on_random_batches(seed):
    rng = np.random.default_rng(seed)
    shape, classes = (6, 8), 4  # few classes for 48 pixels: many ties
    counts = (3, 7, 12)  # a different number of superpixels per image
    superpixels = [_compact(rng.integers(0, k, size=shape)) for k in counts]
    assert len({int(s.max()) + 1 for s in superpixels}) == 3
    labels = rng.integers(0, classes, size=(3, *shape))
    out = SuperpixelVote(superpixels, classes)(torch.from_numpy(labels))
    for b in range(3):
        np.testing.assert_array_equal(out[b].numpy(), majority_vote_reference(labels[b], superpixels[b]))


def test_vote_result_is_constant_on_each_superpixel():
    rng = np.random.default_rng(7)
    superpixels = _compact(rng.integers(0, 5, size=(6, 8)))
    labels = rng.integers(0, 10, size=(1, 6, 8))
    out = SuperpixelVote([superpixels], 10)(torch.from_numpy(labels))[0].numpy()
    for k in range(superpixels.max() + 1):
        inside = out[superpixels == k]
        assert np.all(inside == inside[0])
        assert inside[0] in labels[0][superpixels == k]  # the winner is a label present there


def test_slic_labels_are_contiguous_and_roughly_as_many_as_asked():
    image = SyntheticScenes(n=1, size=(32, 48), seed=0)[0].image
    for asked in (24, 48):
        sp = slic_superpixels(image, asked, compactness=10)
        assert sp.shape == (32, 48)
        k = int(sp.max()) + 1
        np.testing.assert_array_equal(np.unique(sp), np.arange(k))
        assert asked / 2 <= k <= 2 * asked
