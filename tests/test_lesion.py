"""S3-Net's binary-mask metrics and the two protocols, on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest

from lib.metrics.lesion import authors_foreground, gt_free_foreground, hausdorff, interior, mask_scores


def _square(h, w, top, left, size):
    m = np.zeros((h, w), bool)
    m[top : top + size, left : left + size] = True
    return m


def test_mask_scores_by_hand():
    """Two 4x4 squares offset by one pixel: 9 shared pixels of 16 each.
    DSC = 18/32; IoU = 9/23 so HM = 14/23; XOR = 14/16; boundary distances at most sqrt(2)."""
    a, b = _square(10, 10, 2, 2, 4), _square(10, 10, 3, 3, 4)
    s = mask_scores(a, b)
    assert s["dsc"] == pytest.approx(18 / 32)
    assert s["hm"] == pytest.approx(14 / 23)
    assert s["xor"] == pytest.approx(14 / 16)
    assert s["hausdorff"] == pytest.approx(np.sqrt(2))
    assert s["hd95"] <= s["hausdorff"]


def test_hausdorff_of_far_apart_masks_and_empty_masks():
    a, b = _square(20, 20, 0, 0, 2), _square(20, 20, 0, 10, 2)
    assert hausdorff(a, b)[0] == pytest.approx(10.0)  # corner (0,1) to (0,10): 9; (0,0) to (0,10): 10
    empty = np.zeros((20, 20), bool)
    s = mask_scores(empty, b)
    assert s["dsc"] == 0.0 and s["hm"] == 1.0 and np.isnan(s["hausdorff"])


def test_authors_protocol_picks_by_overlap_and_crops_with_the_dilated_ground_truth():
    gt = _square(12, 12, 4, 4, 4)
    labels = np.zeros((12, 12), int)
    labels[:, 6:] = 1  # cluster 1: the right half, 8 of the 16 lesion pixels
    labels[4:8, 4:6] = 2  # cluster 2: the other 8 lesion pixels; cluster 0 holds none. Tie: the first, cluster 1
    fg, g = authors_foreground(labels, gt, dilation=1)
    assert g.sum() == 16
    # the lesion dilated by a radius-1 disk: rows 3-8, cols 3-8 without the 4 corners. Cluster 1 keeps
    # its columns 6-8 there: 3 x 6 = 18 pixels minus the corners (3, 8) and (8, 8) = 16
    assert fg.sum() == 16 and not fg[:, :6].any() and not fg[:, 9:].any()
    blank_fg, _ = authors_foreground(np.zeros((12, 12), int), gt, dilation=1)
    assert blank_fg.sum() == 6 * 6 - 4  # the blank prediction becomes the dilated square (corners excluded)


def test_interior_drops_components_that_touch_the_border():
    m = np.zeros((8, 8), bool)
    m[0:2, 0:2] = True  # touches the border
    m[3:5, 3:5] = True  # interior
    np.testing.assert_array_equal(interior(m), _square(8, 8, 3, 3, 2))


def test_gt_free_picks_the_darkest_cluster_inside_the_image():
    image = np.full((10, 10, 3), 200, np.uint8)
    image[:2] = 10  # a dark band along the top border (a dermoscope's vignette)
    image[4:7, 4:7] = 60  # a dark lesion inside
    labels = np.zeros((10, 10), int)
    labels[:2] = 1
    labels[4:7, 4:7] = 1  # the band and the lesion share a cluster: its interior is the lesion
    np.testing.assert_array_equal(gt_free_foreground(labels, image), _square(10, 10, 4, 4, 3))
    # no cluster with an interior: an empty foreground, not an error
    assert not gt_free_foreground(np.zeros((10, 10), int), image).any()
