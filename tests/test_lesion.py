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
    # each 12-pixel ring: 2 pixels on the other ring (0), 1 corner at sqrt(2), 9 at 1; pooled 24 values,
    # numpy's 95th percentile sits at rank 21.85: 1 + 0.85 (sqrt(2) - 1)
    assert s["hd95"] == pytest.approx(1 + 0.85 * (np.sqrt(2) - 1))


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
    # the lesion dilated by a 3 x 3 square: rows 3-8, cols 3-8. Cluster 1 keeps its columns 6-8 there: 6 x 3
    assert fg.sum() == 18 and fg[3:9, 6:9].all() and not fg[:, :6].any() and not fg[:, 9:].any()
    blank_fg, _ = authors_foreground(np.zeros((12, 12), int), gt, dilation=1)
    assert blank_fg.sum() == 6 * 6  # the blank prediction becomes the dilated square


def test_authors_dilation_is_the_codes_5x5_kernel_applied_twice():
    """cv2.dilate(GT, 5x5 ones, iterations=2) grows a single pixel into a 9 x 9 square: dilation=4."""
    gt = np.zeros((21, 21), bool)
    gt[10, 10] = True
    fg, _ = authors_foreground(np.zeros((21, 21), int), gt)
    np.testing.assert_array_equal(fg, _square(21, 21, 6, 6, 9))


def test_authors_protocol_resizes_the_ground_truth_bilinearly_to_the_labels():
    """Labels at half the ground truth's size: output pixel i reads input rows 2i and 2i+1 (bilinear,
    no anti-aliasing) and any non-zero value counts, so a lesion on rows/cols 3-6 covers 1-3 there."""
    gt = _square(12, 12, 3, 3, 4)
    fg, g = authors_foreground(np.zeros((6, 6), int), gt, dilation=0)
    np.testing.assert_array_equal(g, _square(6, 6, 1, 1, 3))
    np.testing.assert_array_equal(fg, g)


def test_gt_free_scores_at_the_original_resolution():
    """A dark interior block found on 6 x 6 labels is brought to the 12 x 12 ground truth by nearest
    neighbour: each label pixel becomes a 2 x 2 block."""
    from lib.metrics.lesion import protocol_scores

    image = np.full((12, 12, 3), 200, np.uint8)
    image[4:8, 4:8] = 20
    labels = np.zeros((6, 6), int)
    labels[2:4, 2:4] = 1  # the dark block, at half resolution
    gt = _square(12, 12, 4, 4, 4)
    assert protocol_scores(labels, image, gt)["gtfree_dsc"] == 1.0
    wider = _square(12, 12, 4, 4, 6)  # 36 pixels, 16 of them found: DSC 32 / 52
    assert protocol_scores(labels, image, wider)["gtfree_dsc"] == pytest.approx(32 / 52)


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
