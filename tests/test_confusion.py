"""Known-answer tests of lib.metrics.confusion: the study's one-matrix scores and the JigsawGAN report's protocol.

Classes follow the Oxford-IIIT Pet trimaps: 0 = pet, 1 = background, 2 = border. Every expected number is worked
out by hand in the comment beside it; C[t, p] counts pixels of target t predicted as p (rows = target).
"""

from __future__ import annotations

import math

import pytest
import torch

from lib.metrics import (PET_TRIMAP_CLASSES, ConfusionMatrix, ReportProtocol, confusion_matrix, report_batch_scores,
                         scores)

# --------------------------------------------------------------------------------------------
# the toy 2x5 case

TOY_TARGET = torch.tensor([
    [0, 0, 0, 0, 1],
    [1, 1, 1, 2, 2],
])
TOY_PRED = torch.tensor([
    [0, 0, 0, 1, 1],
    [1, 1, 0, 2, 0],
])
# (target, pred) pairs: (0,0) x3, (0,1), (1,1) x3, (1,0), (2,2), (2,0)
TOY_MATRIX = [
    [3, 1, 0],  # pet: 3 right, 1 called background
    [1, 3, 0],  # background: 1 called pet, 3 right
    [1, 0, 1],  # border: 1 called pet, 1 right
]


def test_toy_confusion_matrix():
    m = confusion_matrix(TOY_PRED, TOY_TARGET, 3)
    assert m.dtype == torch.int64 and m.shape == (3, 3)
    assert m.tolist() == TOY_MATRIX


def test_toy_scores():
    s = scores(torch.tensor(TOY_MATRIX), PET_TRIMAP_CLASSES)
    # trace 3 + 3 + 1 = 7 of 10 pixels
    assert s["pixel_accuracy"] == pytest.approx(0.7)
    # recalls 3/4, 3/4, 1/2 -> mean 2/3
    assert s["class_accuracy"] == pytest.approx(2 / 3)
    # column sums 5, 4, 1; row sums 4, 4, 2
    # pet 3 / (4 + 5 - 3) = 1/2; background 3 / (4 + 4 - 3) = 3/5; border 1 / (2 + 1 - 1) = 1/2
    assert s["iou"] == pytest.approx({"pet": 0.5, "background": 0.6, "border": 0.5})
    # (0.5 + 0.6 + 0.5) / 3 = 0.5333...
    assert s["mean_iou"] == pytest.approx(1.6 / 3)


def test_toy_report_batch_scores():
    acc, jac = report_batch_scores(TOY_PRED, TOY_TARGET)
    # micro accuracy over all 10 pixels, background included: 7/10
    assert acc == pytest.approx(0.7)
    # drop the 4 background-target pixels: C' = [[3,1,0],[0,0,0],[1,0,1]], diagonal sum 4
    # unions: pet 4 + 4 - 3 = 5, background (column 1 only) 1, border 2 + 1 - 1 = 2
    # 4 / (5 + 1 + 2 - 1) = 4/7
    assert jac == pytest.approx(4 / 7)


def test_default_names_are_class_numbers():
    s = ConfusionMatrix(3)
    s.update(TOY_PRED, TOY_TARGET)
    assert list(s.scores()["iou"]) == ["0", "1", "2"]


# --------------------------------------------------------------------------------------------
# absent classes and ignore_index


def test_absent_class_is_nan_and_only_predicted_class_is_zero():
    target = torch.tensor([0, 0, 0, 0])
    pred = torch.tensor([0, 0, 0, 2])
    s = scores(confusion_matrix(pred, target, 3), PET_TRIMAP_CLASSES)
    assert s["pixel_accuracy"] == pytest.approx(0.75)  # 3 of 4
    assert s["class_accuracy"] == pytest.approx(0.75)  # only pet is in the target: recall 3/4
    assert s["iou"]["pet"] == pytest.approx(0.75)  # 3 / (4 + 3 - 3)
    assert math.isnan(s["iou"]["background"])  # in neither: 0/0
    assert s["iou"]["border"] == 0.0  # 0 / (0 + 1 - 0)
    assert s["mean_iou"] == pytest.approx(0.375)  # (3/4 + 0) / 2, background left out


def test_ignore_index_outside_the_classes_drops_void_pixels():
    target = torch.tensor([0, 255, 1, 255, 2])
    pred = torch.tensor([0, 2, 1, 7, 0])  # 7 sits on a void pixel: never looked at
    m = confusion_matrix(pred, target, 3, ignore_index=255)
    assert m.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="255"):
        confusion_matrix(pred, target, 3)


def test_ignore_index_inside_the_classes_empties_its_row():
    m = confusion_matrix(TOY_PRED, TOY_TARGET, 3, ignore_index=1)
    # TOY_MATRIX without its background row
    assert m.tolist() == [[3, 1, 0], [0, 0, 0], [1, 0, 1]]


def test_accumulator_ignore_index():
    acc = ConfusionMatrix(3, ignore_index=255)
    acc.update(torch.tensor([0, 1, 2]), torch.tensor([0, 255, 2]))
    assert acc.counts().tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 1]]


# --------------------------------------------------------------------------------------------
# two batches: additive for the confusion matrix, not for the report's batch mean

SMALL_TARGET = torch.tensor([[0, 2]])
SMALL_PRED = torch.tensor([[0, 2]])  # both right: accuracy 1, Jaccard 2 / (1 + 1) = 1


def test_confusion_matrix_accumulates_like_one_big_batch():
    acc = ConfusionMatrix(3, PET_TRIMAP_CLASSES)
    acc.update(TOY_PRED, TOY_TARGET)
    acc.update(SMALL_PRED, SMALL_TARGET)
    big = confusion_matrix(torch.cat([TOY_PRED.flatten(), SMALL_PRED.flatten()]),
                           torch.cat([TOY_TARGET.flatten(), SMALL_TARGET.flatten()]), 3)
    # TOY_MATRIX + one more right pet and one more right border
    assert acc.counts().tolist() == big.tolist() == [[4, 1, 0], [1, 3, 0], [1, 0, 2]]
    assert acc.counts().dtype == torch.int64
    assert acc.scores()["pixel_accuracy"] == pytest.approx(9 / 12)


def test_report_protocol_is_a_batch_mean_not_one_big_batch():
    proto = ReportProtocol()
    assert proto.update(TOY_PRED, TOY_TARGET) == pytest.approx((0.7, 4 / 7))
    assert proto.update(SMALL_PRED, SMALL_TARGET) == pytest.approx((1.0, 1.0))
    s = proto.scores()
    assert s["batches"] == 2
    # unweighted means: (0.7 + 1) / 2 = 0.85 and (4/7 + 1) / 2 = 11/14
    assert s["pixel_accuracy"] == pytest.approx(0.85)
    assert s["iou"] == pytest.approx(11 / 14)
    # the same 12 pixels as ONE batch: accuracy 9/12 = 0.75
    # kept (non-background) 8 pixels: C' = [[4,1,0],[0,0,0],[1,0,2]], diagonal 6
    # unions: pet 5 + 5 - 4 = 6, background 1, border 2 + 3 - 2 = 3 -> 6 / (6 + 1 + 3 - 1) = 2/3
    one = report_batch_scores(torch.cat([TOY_PRED.flatten(), SMALL_PRED.flatten()]),
                              torch.cat([TOY_TARGET.flatten(), SMALL_TARGET.flatten()]))
    assert one == pytest.approx((0.75, 2 / 3))
    assert s["iou"] != pytest.approx(one[1]) and s["pixel_accuracy"] != pytest.approx(one[0])


def test_report_protocol_before_any_batch():
    s = ReportProtocol().scores()
    assert s["batches"] == 0 and math.isnan(s["pixel_accuracy"]) and math.isnan(s["iou"])


# --------------------------------------------------------------------------------------------
# where the two protocols must disagree

PET_TARGET = torch.tensor([
    [0, 0, 1, 1],
    [2, 2, 1, 1],
])  # 2 pet, 4 background, 2 border


def test_background_called_pet_is_perfect_for_the_report_only():
    pred = torch.tensor([
        [0, 0, 0, 0],
        [2, 2, 0, 0],
    ])  # pet and border right, every background pixel called pet
    acc, jac = report_batch_scores(pred, PET_TARGET)
    # kept pixels: 2 pet + 2 border, all right; background's union = 0 kept pixels predicted background
    # 4 / (2 + 0 + 2 - 0) = 1.0
    assert jac == 1.0
    assert acc == pytest.approx(0.5)  # 4 right of 8
    s = scores(confusion_matrix(pred, PET_TARGET, 3), PET_TRIMAP_CLASSES)
    # C = [[2,0,0],[4,0,0],[0,0,2]]
    # pet 2 / (2 + 6 - 2) = 1/3; background 0 / (4 + 0 - 0) = 0; border 2 / (2 + 2 - 2) = 1
    assert s["iou"] == pytest.approx({"pet": 1 / 3, "background": 0.0, "border": 1.0})
    assert s["mean_iou"] == pytest.approx(4 / 9)  # (1/3 + 0 + 1) / 3
    assert s["class_accuracy"] == pytest.approx(2 / 3)  # recalls 1, 0, 1


def test_all_background_prediction_scores_zero_for_the_report():
    pred = torch.ones_like(PET_TARGET)
    acc, jac = report_batch_scores(pred, PET_TARGET)
    # kept: 2 pet + 2 border, all called background: diagonal 0 -> 0 / (2 + 4 + 2 - 4) = 0
    assert jac == 0.0
    assert acc == pytest.approx(0.5)  # the 4 background pixels are right
    s = scores(confusion_matrix(pred, PET_TARGET, 3), PET_TRIMAP_CLASSES)
    # C = [[0,2,0],[0,4,0],[0,2,0]]: pet 0, background 4 / (4 + 8 - 4) = 1/2, border 0
    assert s["mean_iou"] == pytest.approx(1 / 6)


def test_all_background_batch_is_zero_over_zero_for_the_report():
    # no kept pixel: torchmetrics' zero_division default makes the Jaccard 0, though every pixel is right
    target = torch.ones(2, 3, dtype=torch.long)
    assert report_batch_scores(target.clone(), target) == (1.0, 0.0)


def test_report_without_ignore_index_is_plain_micro_jaccard():
    acc, jac = report_batch_scores(TOY_PRED, TOY_TARGET, ignore_index=None)
    # diagonal 7; unions 6 + 5 + 2 = 13
    assert (acc, jac) == pytest.approx((0.7, 7 / 13))


# --------------------------------------------------------------------------------------------
# invariance, shapes and bad inputs


def test_permuting_pixels_changes_nothing():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (4, 16, 16), generator=g)
    pred = torch.where(torch.rand(target.shape, generator=g) < 0.6, target,
                       torch.randint(0, 3, target.shape, generator=g))
    perm = torch.randperm(target.numel(), generator=g)
    shuffled_pred = pred.flatten()[perm].reshape(target.shape)
    shuffled_target = target.flatten()[perm].reshape(target.shape)
    assert not torch.equal(shuffled_target, target)
    m, m2 = confusion_matrix(pred, target, 3), confusion_matrix(shuffled_pred, shuffled_target, 3)
    assert torch.equal(m, m2) and int(m.sum()) == target.numel()
    assert scores(m) == scores(m2)
    assert report_batch_scores(pred, target) == report_batch_scores(shuffled_pred, shuffled_target)


def test_any_shape_same_counts():
    flat = confusion_matrix(TOY_PRED.flatten(), TOY_TARGET.flatten(), 3)
    batched = confusion_matrix(TOY_PRED.reshape(1, 1, 2, 5), TOY_TARGET.reshape(1, 1, 2, 5), 3)
    assert flat.tolist() == batched.tolist() == TOY_MATRIX


@pytest.mark.parametrize("bad", [3, -1])
def test_bad_target_value_raises_naming_it(bad: int):
    target = TOY_TARGET.clone()
    target[1, 4] = bad
    with pytest.raises(ValueError, match=f"label {bad} "):
        confusion_matrix(TOY_PRED, target, 3)
    with pytest.raises(ValueError, match=f"label {bad} "):
        report_batch_scores(TOY_PRED, target)


def test_bad_prediction_value_raises():
    pred = TOY_PRED.clone()
    pred[0, 0] = 5
    with pytest.raises(ValueError, match="pred: label 5 "):
        confusion_matrix(pred, TOY_TARGET, 3)


def test_float_and_mismatched_inputs_raise():
    with pytest.raises(ValueError, match="float32"):
        confusion_matrix(TOY_PRED.float(), TOY_TARGET, 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(TOY_PRED[:, :4], TOY_TARGET, 3)
    with pytest.raises(ValueError, match="2 names"):
        ConfusionMatrix(3, ["pet", "background"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    acc = ConfusionMatrix(3)
    acc.update(TOY_PRED.cuda(), TOY_TARGET.cuda())
    assert acc.matrix is not None and acc.matrix.is_cuda
    assert acc.counts().tolist() == TOY_MATRIX
    assert report_batch_scores(TOY_PRED.cuda(), TOY_TARGET.cuda()) == pytest.approx((0.7, 4 / 7))
