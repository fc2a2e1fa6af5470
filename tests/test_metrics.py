"""Known-answer tests of the region metrics (lib.metrics and lib.evaluation).

Every expected number below is worked out by hand in the comment beside it. Maps are drawn
row by row; ``S0, S1, ...`` name predicted segments (4-connected components, numbered in raster
order of their first pixel), ``A0, A1, ...`` the segments of ground-truth annotator A.
"""

from __future__ import annotations

import numpy as np
import pytest

from lib.evaluation import ImageEval, evaluate_image, summarize
from lib.metrics import (
    count_segments,
    image_miou,
    iou_matrix,
    match_segments,
    overlap,
    pooled_miou,
    pr_curve,
    precision_recall_f,
    relabel_connected,
    upsample_labels,
)

# --------------------------------------------------------------------------------------------
# relabel_connected


# label 2 sits on a diagonal pair, label 5 everywhere else
DIAGONAL = np.array([
    [2, 5, 5, 5],
    [5, 2, 5, 5],
    [5, 5, 5, 5],
    [5, 5, 5, 5],
])


def test_relabel_4_connectivity_splits_a_diagonal_pair():
    # 4-connectivity: (0,0) and (1,1) only touch at a corner -> two segments; the 5s are one
    # region (connected around the pair). Raster order of first pixels:
    # (0,0) -> 0, (0,1) -> 1 (the 5s), (1,1) -> 2.
    expected = np.array([
        [0, 1, 1, 1],
        [1, 2, 1, 1],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
    ])
    np.testing.assert_array_equal(relabel_connected(DIAGONAL, connectivity=1), expected)
    assert count_segments(DIAGONAL, connectivity=1) == 3


def test_relabel_8_connectivity_joins_a_diagonal_pair():
    expected = np.array([
        [0, 1, 1, 1],
        [1, 0, 1, 1],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
    ])
    np.testing.assert_array_equal(relabel_connected(DIAGONAL, connectivity=2), expected)
    assert count_segments(DIAGONAL, connectivity=2) == 2


def test_relabel_default_is_4_connectivity():
    np.testing.assert_array_equal(relabel_connected(DIAGONAL), relabel_connected(DIAGONAL, 1))


def test_relabel_same_label_in_two_places_becomes_two_segments():
    labels = np.array([
        [3, 4, 3],
        [3, 4, 3],
    ])
    expected = np.array([
        [0, 1, 2],
        [0, 1, 2],
    ])
    for connectivity in (1, 2):
        np.testing.assert_array_equal(relabel_connected(labels, connectivity), expected)


def test_relabel_negative_and_large_labels():
    # -7 (left column plus (0,2)) are not 4-connected across the 10**12 column: 4 segments
    labels = np.array([
        [-7, 10**12, -7],
        [-7, 10**12, 3],
    ])
    expected = np.array([
        [0, 1, 2],
        [0, 1, 3],
    ])
    np.testing.assert_array_equal(relabel_connected(labels), expected)
    # a label equal to 0 or to the minimum is not treated as background
    np.testing.assert_array_equal(relabel_connected(np.zeros((2, 3), int)), np.zeros((2, 3)))
    np.testing.assert_array_equal(relabel_connected(np.full((2, 3), -5)), np.zeros((2, 3)))


@pytest.mark.parametrize(
    "labels",
    [
        np.array([[2**60, 2**60 + 1]], dtype=np.uint64),  # merged into one segment
        np.array([[np.iinfo(np.int64).min, np.iinfo(np.int64).max]], dtype=np.int64),  # wraps to 0
    ],
    ids=["uint64-above-2**53", "int64-full-range"],
)
def test_relabel_extreme_integer_labels(labels):
    with np.errstate(all="ignore"):
        out = relabel_connected(labels)
    np.testing.assert_array_equal(out, [[0, 1]])


def test_relabel_unsigned_and_small_dtypes():
    expected = [[0, 1, 2], [0, 1, 1]]
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int32, bool):
        labels = np.array([[0, 1, 0], [0, 1, 1]]).astype(dtype)
        np.testing.assert_array_equal(relabel_connected(labels), expected, err_msg=str(dtype))


def test_relabel_contiguous_labels_on_random_maps():
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.integers(-3, 4, size=(6, 8)) * 1000
        out = relabel_connected(labels)
        n = out.max() + 1
        np.testing.assert_array_equal(np.unique(out), np.arange(n))
        # every output segment lies inside one input label
        for k in range(n):
            assert len(np.unique(labels[out == k])) == 1
        # 8-connected components can only merge 4-connected ones
        assert count_segments(labels, 2) <= n


def test_relabel_rejects_non_2d():
    with pytest.raises(ValueError):
        relabel_connected(np.zeros((2, 2, 2), int))


# --------------------------------------------------------------------------------------------
# overlap / iou_matrix


def test_overlap_and_iou_matrix_hand_case():
    a = np.array([
        [0, 0, 0, 1],
        [0, 0, 1, 1],
    ])  # a0: 5 px, a1: 3 px
    b = np.array([
        [7, 7, 2, 2],
        [7, 7, 7, 2],
    ])  # renumbered by value: label 2 -> b0 (3 px), label 7 -> b1 (5 px)
    inter, size_a, size_b = overlap(a, b)
    # a0 ∩ b0 = {(0,2)} = 1; a0 ∩ b1 = {(0,0),(0,1),(1,0),(1,1)} = 4
    # a1 ∩ b0 = {(0,3),(1,3)} = 2; a1 ∩ b1 = {(1,2)} = 1
    np.testing.assert_array_equal(inter, [[1, 4], [2, 1]])
    np.testing.assert_array_equal(size_a, [5, 3])
    np.testing.assert_array_equal(size_b, [3, 5])
    # IoU = inter / (|a| + |b| - inter)
    expected = np.array([
        [1 / (5 + 3 - 1), 4 / (5 + 5 - 4)],
        [2 / (3 + 3 - 2), 1 / (3 + 5 - 1)],
    ])  # = [[1/7, 2/3], [1/2, 1/7]]
    np.testing.assert_allclose(iou_matrix(a, b), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(iou_matrix(b, a), expected.T, rtol=0, atol=1e-15)


def test_overlap_rejects_different_shapes():
    with pytest.raises(ValueError):
        overlap(np.zeros((2, 3), int), np.zeros((3, 2), int))


def test_iou_of_a_map_with_itself_is_identity():
    rng = np.random.default_rng(1)
    labels = relabel_connected(rng.integers(0, 3, size=(6, 8)))
    np.testing.assert_allclose(iou_matrix(labels, labels), np.eye(labels.max() + 1))


# --------------------------------------------------------------------------------------------
# Kim et al. mIoU

# One 2x4 prediction (S0 = left 2x2 block, S1 = right 2x2 block) and several annotators.
PRED = np.array([
    [0, 0, 1, 1],
    [0, 0, 1, 1],
])
# A: 3 labels. A0 = left block (IoU with S0 = 1), A1 = column 2, A2 = column 3 (each 2 px,
# IoU with S1 = 2/4). Scores [1, 1/2, 1/2], mean 2/3.
GT_A = np.array([
    [0, 0, 1, 2],
    [0, 0, 1, 2],
])
# A': 3 labels. A'0 = column 0 (IoU with S0 = 2/4), A'1 = columns 1-2 (4 px, IoU 2/6 with
# either block), A'2 = column 3 (IoU 2/4 with S1). Scores [1/2, 1/3, 1/2], mean 4/9.
GT_A2 = np.array([
    [0, 1, 1, 2],
    [0, 1, 1, 2],
])
# B: 1 label, the whole image: IoU 4/8 with each block. Scores [1/2].
GT_B = np.zeros((2, 4), int)
# C: 2 labels, top and bottom rows: IoU with a block = 2/(4+4-2) = 1/3. Scores [1/3, 1/3].
GT_C = np.array([
    [0, 0, 0, 0],
    [1, 1, 1, 1],
])
# D: 2 labels. D0 = first three columns (6 px): IoU with S0 = 4/6; D1 = column 3: 2/4.
# Scores [2/3, 1/2], mean 7/12.
GT_D = np.array([
    [0, 0, 0, 1],
    [0, 0, 0, 1],
])


def test_image_miou_scores_per_annotator():
    im = image_miou(PRED, [GT_B, GT_A])
    assert im.n_segments == 2
    np.testing.assert_allclose(im.scores[0], [1 / 2])
    np.testing.assert_allclose(im.scores[1], [1, 1 / 2, 1 / 2])
    assert im.fine == 1  # A has the most labels (3)
    assert im.coarse == 0  # B has the fewest (1)


def test_pooled_miou_all_fine_coarse_mean_by_hand():
    scores = pooled_miou([image_miou(PRED, [GT_B, GT_A])])
    # All: (1/2 + 1 + 1/2 + 1/2) / 4 = 5/8; Fine = A = 2/3; Coarse = B = 1/2
    assert scores["all"] == pytest.approx(5 / 8)
    assert scores["fine"] == pytest.approx(2 / 3)
    assert scores["coarse"] == pytest.approx(1 / 2)
    assert scores["mean"] == pytest.approx((5 / 8 + 2 / 3 + 1 / 2) / 3)


def test_fine_tie_goes_to_the_first_annotator():
    # A and A' both have 3 labels: Fine is whichever comes first in the file
    first_a = pooled_miou([image_miou(PRED, [GT_B, GT_A, GT_A2])])
    first_a2 = pooled_miou([image_miou(PRED, [GT_B, GT_A2, GT_A])])
    assert first_a["fine"] == pytest.approx(2 / 3)
    assert first_a2["fine"] == pytest.approx(4 / 9)
    # All pools the same 7 scores either way: (1/2 + 2 + 4/3) / 7 = (23/6) / 7
    assert first_a["all"] == pytest.approx(23 / 42)
    assert first_a2["all"] == pytest.approx(23 / 42)
    assert first_a["coarse"] == first_a2["coarse"] == pytest.approx(1 / 2)


def test_coarse_tie_goes_to_the_first_annotator():
    # C and D both have 2 labels (the fewest), A has 3
    first_c = pooled_miou([image_miou(PRED, [GT_C, GT_D, GT_A])])
    first_d = pooled_miou([image_miou(PRED, [GT_D, GT_C, GT_A])])
    assert first_c["coarse"] == pytest.approx(1 / 3)
    assert first_d["coarse"] == pytest.approx(7 / 12)
    assert first_c["fine"] == first_d["fine"] == pytest.approx(2 / 3)


def test_pooled_over_segments_not_mean_of_images():
    # image 1: one GT segment, perfectly predicted -> scores [1]
    # image 2: PRED vs A -> scores [1, 1/2, 1/2]
    # pooled: (1 + 1 + 1/2 + 1/2) / 4 = 3/4; a mean of per-image means would be (1 + 2/3)/2 = 5/6
    one = image_miou(np.zeros((2, 2), int), [np.zeros((2, 2), int)])
    two = image_miou(PRED, [GT_A])
    scores = pooled_miou([one, two])
    assert scores["all"] == pytest.approx(3 / 4)
    assert scores["fine"] == pytest.approx(3 / 4)
    assert scores["coarse"] == pytest.approx(3 / 4)
    assert scores["all"] != pytest.approx(5 / 6)


def test_prediction_is_split_into_4_connected_components_first():
    # label 0 appears in two separate columns: two segments, each matching one GT column
    pred = np.array([
        [0, 1, 0],
        [0, 1, 0],
    ])
    gt = np.array([
        [0, 1, 2],
        [0, 1, 2],
    ])
    im = image_miou(pred, [gt])
    assert im.n_segments == 3
    # without step 1, GT column 0 would score 2/4 against the 4-pixel label 0
    np.testing.assert_allclose(im.scores[0], [1, 1, 1])


def test_extra_fragment_that_nobody_picks_costs_nothing():
    gt = np.array([
        [0, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1],
    ])
    # P1: S0 = top-left 4 px, S1 = top-right 2 px, S2 = bottom row.
    # G0 (top row, 6 px): best IoU 4/6 (S0; S1 gives 2/6). G1: 1 (S2). mIoU = (2/3 + 1) / 2 = 5/6
    p1 = np.array([
        [0, 0, 0, 0, 1, 1],
        [2, 2, 2, 2, 2, 2],
    ])
    # P2 splits S1 (nobody's best match) into two 1-pixel fragments: G0 still picks S0 (4/6)
    p2 = np.array([
        [0, 0, 0, 0, 1, 3],
        [2, 2, 2, 2, 2, 2],
    ])
    s1, s2 = pooled_miou([image_miou(p1, [gt])]), pooled_miou([image_miou(p2, [gt])])
    assert s1["all"] == pytest.approx(5 / 6)
    assert s2 == s1
    assert image_miou(p1, [gt]).n_segments == 3
    assert image_miou(p2, [gt]).n_segments == 4


def test_blank_prediction_scores_segment_area_fraction():
    gt = np.array([
        [0, 1, 1, 1],
        [2, 2, 2, 2],
    ])  # segment sizes 1, 3, 4 of N = 8 pixels
    im = image_miou(np.zeros((2, 4), int), [gt])
    assert im.n_segments == 1
    # IoU of G with the whole image = |G| / N
    np.testing.assert_allclose(im.scores[0], [1 / 8, 3 / 8, 4 / 8])
    assert pooled_miou([im])["all"] == pytest.approx(1 / 3)


def test_miou_refuses_empty_inputs():
    with pytest.raises(ValueError):
        image_miou(PRED, [])
    with pytest.raises(ValueError):
        pooled_miou([])


def _random_case(rng: np.random.Generator, shape=(6, 8)):
    pred = rng.integers(0, 4, size=shape)
    gts = [rng.integers(0, k, size=shape) for k in (2, 3, 5)]
    return pred, gts


def _permute_values(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bijection of the label values (mapped into a different, shuffled range)."""
    values = np.unique(labels)
    new = rng.permutation(len(values)) * 7 + 100
    return new[np.searchsorted(values, labels)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_invariant_to_label_permutations(seed):
    rng = np.random.default_rng(seed)
    pred, gts = _random_case(rng)
    pred_p = _permute_values(pred, rng)
    gts_p = [_permute_values(g, rng) for g in gts]
    assert not np.array_equal(pred_p, pred)

    ref = evaluate_image(pred, gts)
    ref_sum = summarize([ref])
    for p, g in ((pred_p, gts), (pred, gts_p), (pred_p, gts_p)):
        ev = evaluate_image(p, g)
        assert ev.n_segments == ref.n_segments
        for s_ref, s in zip(ref.miou.scores, ev.miou.scores):
            np.testing.assert_allclose(np.sort(s), np.sort(s_ref))
        assert ev.miou.fine == ref.miou.fine and ev.miou.coarse == ref.miou.coarse
        np.testing.assert_allclose(ev.matches.area, ref.matches.area)
        np.testing.assert_allclose(ev.matches.pred_best_iou, ref.matches.pred_best_iou)
        out = summarize([ev])
        assert out.keys() == ref_sum.keys()
        for k in out:
            assert out[k] == pytest.approx(ref_sum[k], rel=1e-12, abs=1e-15), k


# --------------------------------------------------------------------------------------------
# Kanezaki's segment precision / recall / F and PR curves

# Image 1 (2x4, 8 px). Prediction: S0 = 5 px (left block + (1,2)), S1 = (0,2),(0,3), S2 = (1,3).
PR_PRED_1 = np.array([
    [0, 0, 1, 1],
    [0, 0, 0, 2],
])
# Annotator A: A0 = left block (4 px), A1 = right block (4 px)
#   S0-A0: 4/5 = 0.8   S0-A1: 1/8   S1-A1: 2/4   S2-A1: 1/4
PR_GT_1A = np.array([
    [0, 0, 1, 1],
    [0, 0, 1, 1],
])
# Annotator B: B0 = everything but the top-right pair (6 px), B1 = top-right pair (2 px)
#   S0-B0: 5/6   S1-B1: 1   S2-B0: 1/6
PR_GT_1B = np.array([
    [0, 0, 1, 1],
    [0, 0, 0, 0],
])
# Best IoU of each predicted segment over both annotators: S0 5/6, S1 1, S2 1/4.
# Best IoU of each GT segment: A0 0.8 (S0), A1 0.5 (S1), B0 5/6 (S0), B1 1 (S1).

# Image 2 (1x5). Prediction T0 = 3 px, T1 = 2 px; one annotator C0 = 4 px, C1 = 1 px.
#   T0-C0: 3/4   T1-C1: 1/2   T1-C0: 1/5   -> T0 correct, T1 not; C0 best 3/4, C1 best 1/2.
PR_PRED_2 = np.array([[0, 0, 0, 1, 1]])
PR_GT_2 = np.array([[0, 0, 0, 0, 1]])


def _matches_1():
    return match_segments(relabel_connected(PR_PRED_1), [PR_GT_1A, PR_GT_1B])


def _matches_2():
    return match_segments(relabel_connected(PR_PRED_2), [PR_GT_2])


def test_segment_matches_hand_case():
    m = _matches_1()
    np.testing.assert_allclose(m.area, [5 / 8, 2 / 8, 1 / 8])
    np.testing.assert_allclose(m.pred_best_iou, [5 / 6, 1, 1 / 4])
    np.testing.assert_allclose(m.gt_best_iou, [4 / 5, 1 / 2, 5 / 6, 1])
    np.testing.assert_array_equal(m.gt_best_pred, [0, 1, 0, 1])


def test_precision_recall_f_hand_case():
    m = _matches_1()
    # IoU > 0.5: S0, S1 correct of 3 -> P = 2/3; GT matched: A0, B0, B1 of 4 -> R = 3/4
    # F = 2 P R / (P + R) = 1 / (17/12) = 12/17
    p, r, f = precision_recall_f(m, 0.5)
    assert (p, r, f) == pytest.approx((2 / 3, 3 / 4, 12 / 17))
    # IoU 0.5 exactly (A1 vs S1) is *not* a match: the test is strict
    # IoU > 0.9: only S1 correct -> P = 1/3; only B1 matched -> R = 1/4; F = (1/6)/(7/12) = 2/7
    assert precision_recall_f(m, 0.9) == pytest.approx((1 / 3, 1 / 4, 2 / 7))


def test_precision_recall_f_zero_when_nothing_matches():
    # blank prediction against two halves: IoU 1/2 each, never > 0.5
    m = match_segments(np.zeros((2, 2), int), [np.array([[0, 0], [1, 1]])])
    assert precision_recall_f(m, 0.5) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.49])
def test_thresholds_below_one_half_are_refused(threshold):
    m = _matches_1()
    with pytest.raises(ValueError):
        precision_recall_f(m, threshold)
    with pytest.raises(ValueError):
        m.hits(threshold)
    with pytest.raises(ValueError):
        pr_curve([m], threshold)


def test_hits_count_one_gt_segment_per_annotator_at_most():
    # at 0.5: A0 -> S0, B0 -> S0, B1 -> S1 (A1 scores exactly 0.5: not matched)
    np.testing.assert_array_equal(_matches_1().hits(0.5), [2, 1, 0])
    np.testing.assert_array_equal(_matches_1().hits(0.9), [0, 1, 0])


def test_pr_curve_two_images_by_hand():
    curve = pr_curve([_matches_1(), _matches_2()], 0.5)
    # areas (fraction of their image): image 1 [5/8, 2/8, 1/8], image 2 [3/5, 2/5]
    # ranked: S0 (.625), T0 (.6), T1 (.4), S1 (.25), S2 (.125)  -- note T1 (2 px) ranks before
    # S1 (2 px): the ranking uses the fraction of the image, not pixels.
    # correct:  T    T    F    T    F   -> precision 1, 1, 2/3, 3/4, 3/5
    # hits:     2    1    0    1    0   -> recall over 6 GT segments: 2/6, 3/6, 3/6, 4/6, 4/6
    np.testing.assert_allclose(curve.precision, [1, 1, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(curve.recall, [2 / 6, 3 / 6, 3 / 6, 4 / 6, 4 / 6])
    # AP = sum (r_k - r_{k-1}) p_k = 2/6*1 + 1/6*1 + 0 + 1/6*3/4 + 0 = 1/2 + 1/8 = 5/8
    assert curve.ap == pytest.approx(5 / 8)


def test_pr_curve_final_point_matches_pooled_counts():
    rng = np.random.default_rng(3)
    matches = []
    for _ in range(4):
        pred, gts = _random_case(rng, (8, 10))
        matches.append(match_segments(relabel_connected(pred), gts))
    curve = pr_curve(matches, 0.5)
    n_pred = sum(len(m.area) for m in matches)
    n_correct = sum(int(m.correct(0.5).sum()) for m in matches)
    n_gt = sum(len(m.gt_best_iou) for m in matches)
    n_matched = sum(int((m.gt_best_iou > 0.5).sum()) for m in matches)
    assert len(curve.precision) == n_pred
    assert curve.precision[-1] == pytest.approx(n_correct / n_pred)
    assert curve.recall[-1] == pytest.approx(n_matched / n_gt)
    assert np.all(np.diff(curve.recall) >= 0)
    assert 0 <= curve.ap <= 1


def _noisy(labels: np.ndarray, rng: np.random.Generator, fraction: float, n_values: int) -> np.ndarray:
    out = labels.copy()
    flip = rng.random(labels.shape) < fraction
    out[flip] = rng.integers(0, n_values, size=int(flip.sum()))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_matching_is_one_to_one_at_one_half(seed):
    rng = np.random.default_rng(seed)
    # 12 blocks of 3x3; annotators and prediction are noisy copies, so many IoUs exceed 0.5
    scene = np.kron(np.arange(12).reshape(3, 4), np.ones((3, 3), int))  # 9x12
    gts = [_noisy(scene, rng, 0.05, 12), scene // 2]  # the second merges horizontal pairs
    pred = _noisy(scene, rng, 0.1, 12)
    segments = relabel_connected(pred)
    for gt in gts:
        matched = iou_matrix(segments, gt) > 0.5
        assert matched.sum(axis=0).max() <= 1  # each GT segment: at most one predicted segment
        assert matched.sum(axis=1).max() <= 1  # each predicted segment: at most one GT segment
    m = match_segments(segments, gts)
    hits = m.hits(0.5)
    assert hits.sum() >= 6  # the case is not vacuous
    assert hits.max() <= len(gts)  # at most one per annotator
    assert hits.sum() == int((m.gt_best_iou > 0.5).sum())


# --------------------------------------------------------------------------------------------
# evaluate_image and summarize


def test_upsample_labels_nearest():
    small = np.array([
        [1, 2],
        [3, 4],
    ])
    expected = np.array([
        [1, 1, 2, 2],
        [1, 1, 2, 2],
        [3, 3, 4, 4],
        [3, 3, 4, 4],
    ])
    np.testing.assert_array_equal(upsample_labels(small, (4, 4)), expected)
    np.testing.assert_array_equal(upsample_labels(small, (2, 2)), small)
    # a non-integer ratio: output pixel i samples input column floor((i + 0.5) * 3 / 4),
    # i.e. centres 0.375, 1.125, 1.875, 2.625 -> columns 0, 1, 1, 2
    np.testing.assert_array_equal(upsample_labels(np.array([[1, 2, 3]]), (1, 4)), [[1, 2, 2, 3]])
    # nearest neighbour never invents a label (no interpolation between 1 and 4)
    assert set(np.unique(upsample_labels(small, (5, 7)))) <= {1, 2, 3, 4}


def test_downscaled_perfect_prediction_scores_one():
    blocks = np.array([
        [0, 7, 7],
        [3, 3, 1],
    ])
    gt = np.kron(blocks, np.ones((2, 2), int))  # 4x6 ground truth made of 2x2 blocks
    coarse_gt = np.zeros_like(gt)
    pred_small = np.array([
        [5, 9, 9],
        [2, 2, 8],
    ])  # the same partition with other label values, at half the resolution
    ev = evaluate_image(pred_small, [gt, coarse_gt])
    assert ev.n_segments == 4
    np.testing.assert_allclose(ev.miou.scores[0], 1.0)
    np.testing.assert_allclose(ev.matches.area, [4 / 24, 8 / 24, 8 / 24, 4 / 24])
    # the blank annotator's one segment: best IoU 8/24 -> unmatched; the 4 others match exactly
    np.testing.assert_allclose(ev.miou.scores[1], [1 / 3])
    assert precision_recall_f(ev.matches, 0.5) == pytest.approx((1.0, 4 / 5, 8 / 9))
    full = evaluate_image(np.kron(pred_small, np.ones((2, 2), int)), [gt, coarse_gt])
    for k, v in full.to_arrays().items():
        np.testing.assert_array_equal(ev.to_arrays()[k], v)


def test_image_eval_array_roundtrip():
    rng = np.random.default_rng(4)
    evals = []
    for _ in range(3):
        pred, gts = _random_case(rng)
        evals.append(evaluate_image(pred, gts))
    evals.append(evaluate_image(PR_PRED_2, [PR_GT_2]))  # a single annotator
    back = [ImageEval.from_arrays({k: np.array(v) for k, v in e.to_arrays().items()}) for e in evals]
    for e, b in zip(evals, back):
        assert b.n_segments == e.n_segments
        assert len(b.miou.scores) == len(e.miou.scores)
        for s, t in zip(e.miou.scores, b.miou.scores):
            np.testing.assert_array_equal(s, t)
    assert summarize(back, (0.5, 0.7)) == summarize(evals, (0.5, 0.7))


def test_summarize_two_images_by_hand():
    evals = [evaluate_image(PR_PRED_1, [PR_GT_1A, PR_GT_1B]), evaluate_image(PR_PRED_2, [PR_GT_2])]
    out = summarize(evals, thresholds=(0.5, 0.9))
    assert set(out) == {
        "miou_all", "miou_fine", "miou_coarse", "miou_mean", "segments", "covering", "pri", "voi",
        "precision_0.5", "recall_0.5", "f_0.5", "ap_0.5",
        "precision_0.9", "recall_0.9", "f_0.9", "ap_0.9",
    }
    # mIoU pooled: image 1 A [4/5, 1/2], B [5/6, 1]; image 2 [3/4, 1/2]
    # All = (0.8 + 0.5 + 5/6 + 1 + 0.75 + 0.5) / 6 = 263/360
    # Fine = Coarse: A and B tie at 2 labels -> A (the first): (0.8 + 0.5 + 0.75 + 0.5)/4 = 51/80
    assert out["miou_all"] == pytest.approx(263 / 360)
    assert out["miou_fine"] == pytest.approx(51 / 80)
    assert out["miou_coarse"] == pytest.approx(51 / 80)
    assert out["miou_mean"] == pytest.approx((263 / 360 + 2 * 51 / 80) / 3)
    # Per-image P/R/F averaged over images.
    # 0.5: image 1 (2/3, 3/4, 12/17), image 2 (1/2, 1/2, 1/2)
    assert out["precision_0.5"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert out["recall_0.5"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert out["f_0.5"] == pytest.approx((12 / 17 + 1 / 2) / 2)
    assert out["ap_0.5"] == pytest.approx(5 / 8)  # the PR curve above
    # 0.9: image 1 (1/3, 1/4, 2/7), image 2 (0, 0, 0)
    assert out["precision_0.9"] == pytest.approx(1 / 6)
    assert out["recall_0.9"] == pytest.approx(1 / 8)
    assert out["f_0.9"] == pytest.approx(1 / 7)
    # ranked S0 T0 T1 S1 S2; only S1 correct (4th) with 1 hit of 6 -> AP = 1/6 * 1/4
    assert out["ap_0.9"] == pytest.approx(1 / 24)
    assert out["segments"] == pytest.approx((3 + 2) / 2)


def test_evaluate_image_refuses_a_prediction_that_is_not_a_shrunken_copy():
    from lib.evaluation import evaluate_image

    gt = np.zeros((4, 6), int)
    evaluate_image(np.zeros((2, 3), int), [gt])  # half size: accepted, upsampled
    for bad in (np.zeros((6, 4), int), np.zeros((8, 12), int), np.zeros((2, 2), int)):
        with pytest.raises(ValueError, match="4x6"):
            evaluate_image(bad, [gt])
    with pytest.raises(ValueError, match="no ground-truth"):
        evaluate_image(np.zeros((4, 6), int), [])


# --------------------------------------------------------------------------------------------
# BSDS region benchmarks


def test_region_scores_by_hand():
    """2x2 image, prediction left|right, ground truth top/bottom.

    Covering: each GT row (2 px) overlaps each column in 1 px, union 3 -> 2 * (2 * 1/3) / 4 = 1/3.
    Rand index: of the 6 pixel pairs, only the 2 diagonal pairs are apart in both -> 2/6.
    VOI: H(S) = H(G) = 1 bit, the two are independent (I = 0) -> 2 bits.
    """
    from lib.metrics import pooled_region, region_scores

    pred = np.array([[0, 1], [0, 1]])
    gt = np.array([[0, 0], [1, 1]])
    r = region_scores(pred, [gt])
    np.testing.assert_allclose(r.covered / r.pixels, [1 / 3])
    np.testing.assert_allclose(r.rand, [1 / 3])
    np.testing.assert_allclose(r.voi, [2.0])
    same = region_scores(gt, [gt, pred])
    np.testing.assert_allclose(same.rand, [1.0, 1 / 3])
    np.testing.assert_allclose(same.voi, [0.0, 2.0])
    # pooled: covering by pixels over annotators, PRI and VOI averaged per image then over images
    out = pooled_region([same, r])
    assert out["covering"] == pytest.approx((4 + 4 / 3 + 4 / 3) / 12)
    assert out["pri"] == pytest.approx(((1 + 1 / 3) / 2 + 1 / 3) / 2)
    assert out["voi"] == pytest.approx((1.0 + 2.0) / 2)


def test_region_scores_are_invariant_to_label_values_and_voi_is_symmetric():
    from lib.metrics import region_scores

    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 4, (9, 11)), rng.integers(0, 3, (9, 11))
    r = region_scores(a, [b])
    perm = rng.permutation(10)
    r2 = region_scores(perm[a] + 100, [b * 7 - 3])
    np.testing.assert_allclose([r.covered, r.rand, r.voi], [r2.covered, r2.rand, r2.voi])
    np.testing.assert_allclose(region_scores(b, [a]).voi, r.voi)
    assert 0 <= r.rand[0] <= 1 and r.voi[0] >= 0


def test_void_pixels_do_not_count():
    """Negative ground-truth labels (VOC's dropped void border) are removed from every count."""
    from lib.evaluation import evaluate_image

    gt = np.array([[0, 0, -1, 1], [0, 0, -1, 1]])
    pred = np.array([[5, 5, 9, 7], [5, 5, 9, 7]])  # the column under the void is its own segment
    ev = evaluate_image(pred, [gt])
    np.testing.assert_allclose(ev.miou.scores[0], [1.0, 1.0])
    assert ev.n_segments == 2  # the segment lying wholly in the void is gone
    np.testing.assert_allclose(ev.region.rand, [1.0])
    assert ev.region.pixels[0] == 6
    kept = evaluate_image(pred, [np.where(gt < 0, 2, gt)])  # void kept as a label of its own
    assert kept.n_segments == 3
    with pytest.raises(ValueError, match="void"):
        evaluate_image(pred, [np.full_like(gt, -1)])


def test_region_benchmarks_score_the_label_map_as_given():
    """As the BSDS code does: one label in two separate blobs is one region for Covering/PRI/VOI,
    while the Kim mIoU and the segment count see its two 4-connected segments."""
    from lib.evaluation import evaluate_image

    gt = np.array([[0, 0, 1, 1, 2, 2]] * 2)
    pred = np.array([[5, 5, 6, 6, 5, 5]] * 2)  # label 5 covers GT regions 0 and 2, apart
    ev = evaluate_image(pred, [gt])
    assert ev.n_segments == 3
    np.testing.assert_allclose(ev.miou.scores[0], [1.0, 1.0, 1.0])
    # GT regions 0 and 2 (4 px each) best match label 5 (8 px): IoU 1/2; region 1 matches label 6 exactly
    np.testing.assert_allclose(ev.region.covered / ev.region.pixels, [(4 * 0.5 + 4 * 1 + 4 * 0.5) / 12])
    # H(S) = H(1/3, 2/3); H(G) = log2 3; S is a function of G, so I = H(S): VOI = log2 3 - H(S)
    h_s = -(1 / 3 * np.log2(1 / 3) + 2 / 3 * np.log2(2 / 3))
    np.testing.assert_allclose(ev.region.voi, [np.log2(3) - h_s])
