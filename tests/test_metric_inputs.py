"""Input checks of the public metric functions: integer (and bool) maps are scored alike, whatever
their dtype; floats, NaN, colour images and 0-D / 1-D arrays are refused with a ValueError that names
the argument. Before these checks a NaN label was scored as one segment and a NaN mask as foreground."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

from lib.metrics import (
    binary_mask,
    count_segments,
    image_miou,
    iou_matrix,
    label_map,
    match_segments,
    overlap,
    pooled_miou,
    region_scores,
    relabel_connected,
    upsample_labels,
)
from lib.metrics.lesion import authors_foreground, gt_free_foreground, hausdorff, mask_scores, protocol_scores

HALVES = np.zeros((4, 4), np.int64)
HALVES[:, 2:] = 1  # two halves: against itself every IoU is 1 or 0

BLOCK = np.zeros((8, 8), np.int64)
BLOCK[2:6, 2:6] = 1  # cluster 1: a 4x4 block inside the image
SHIFTED = np.zeros((8, 8), np.int64)
SHIFTED[3:7, 3:7] = 1
DARK = np.full((8, 8, 3), 200, np.uint8)
DARK[2:6, 2:6] = 20  # the block is dark: the ground-truth-free rule picks it

INT_DTYPES = [np.uint8, np.uint16, np.int32, np.int64]


@dataclass(frozen=True)
class Case:
    """A public function, valid keyword arguments, and the arguments it must check."""

    fn: Callable[..., Any]
    args: dict[str, Any]
    checked: tuple[str, ...]  # "segmentations[0]" stands for the first (only) annotator
    kind: str = "label map"  # or "mask": what the message asks for
    flat_ok: bool = False  # 1-D maps accepted (evaluate_image passes the non-void pixels, flattened)

    def call(self, **replace: Any) -> Any:
        args = dict(self.args)
        for name, value in replace.items():
            if name == "segmentations[0]":
                args["segmentations"] = [value]
            else:
                args[name] = value
        return self.fn(**args)

    def current(self, name: str) -> np.ndarray:
        return self.args["segmentations"][0] if name == "segmentations[0]" else self.args[name]


CASES = {
    "relabel_connected": Case(relabel_connected, {"labels": HALVES}, ("labels",)),
    "count_segments": Case(count_segments, {"labels": HALVES}, ("labels",)),
    "upsample_labels": Case(upsample_labels, {"labels": HALVES, "shape": (8, 8)}, ("labels",)),
    "overlap": Case(overlap, {"a": HALVES, "b": HALVES}, ("a", "b"), flat_ok=True),
    "iou_matrix": Case(iou_matrix, {"a": HALVES, "b": HALVES}, ("a", "b"), flat_ok=True),
    "image_miou": Case(image_miou, {"pred": HALVES, "segmentations": [HALVES]}, ("pred", "segmentations[0]")),
    "region_scores": Case(region_scores, {"pred": HALVES, "segmentations": [HALVES]}, ("pred", "segmentations[0]"),
                          flat_ok=True),
    "match_segments": Case(match_segments, {"segments": HALVES, "segmentations": [HALVES]},
                           ("segments", "segmentations[0]")),
    "mask_scores": Case(mask_scores, {"pred": BLOCK, "gt": SHIFTED}, ("pred", "gt"), kind="mask"),
    "hausdorff": Case(hausdorff, {"a": BLOCK, "b": SHIFTED}, ("a", "b"), kind="mask"),
    "authors_foreground": Case(authors_foreground, {"labels": BLOCK, "gt": SHIFTED, "dilation": 1}, ("labels", "gt")),
    "gt_free_foreground": Case(gt_free_foreground, {"labels": BLOCK, "image": DARK}, ("labels",)),
    "protocol_scores": Case(protocol_scores, {"labels": BLOCK, "image": DARK, "gt": SHIFTED}, ("labels", "gt")),
}
ARGS = [(f, name) for f, case in CASES.items() for name in case.checked]
MASK_ARGS = {("mask_scores", "pred"), ("mask_scores", "gt"), ("hausdorff", "a"), ("hausdorff", "b"),
             ("authors_foreground", "gt"), ("protocol_scores", "gt")}


def _assert_same(got: Any, want: Any) -> None:
    """Equal values (NaN equal to NaN), looking inside tuples, lists, dicts and dataclasses."""
    if dataclasses.is_dataclass(want):
        assert type(got) is type(want)
        for f in dataclasses.fields(want):
            _assert_same(getattr(got, f.name), getattr(want, f.name))
    elif isinstance(want, dict):
        assert got.keys() == want.keys()
        for k in want:
            _assert_same(got[k], want[k])
    elif isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w)
    else:
        np.testing.assert_array_equal(got, want)


def _pattern(name: str) -> str:
    return "^" + re.escape(f"{name}: ")


# --------------------------------------------------------------------------------------------
# refused inputs: the message names the argument and says what to pass


@pytest.mark.parametrize("f, name", ARGS)
def test_float_maps_are_refused_even_when_integer_valued(f, name):
    case = CASES[f]
    value = case.current(name).astype(np.float64)  # 0.0 and 1.0 only: still refused
    what = "mask" if (f, name) in MASK_ARGS else "integer label map"
    with pytest.raises(ValueError, match=_pattern(name) + r"float64 values \(integer-valued\); pass .*" + what):
        case.call(**{name: value})


@pytest.mark.parametrize("f, name", ARGS)
def test_nan_is_refused(f, name):
    case = CASES[f]
    value = case.current(name).astype(np.float32)
    value[0, 0] = np.nan
    with pytest.raises(ValueError, match=_pattern(name) + r"float32 values \(NaN found"):
        case.call(**{name: value})


@pytest.mark.parametrize("f, name", ARGS)
def test_non_integer_floats_are_refused(f, name):
    case = CASES[f]
    value = case.current(name) + 0.5
    with pytest.raises(ValueError, match=_pattern(name) + r"float64 values \(non-integer values found\)"):
        case.call(**{name: value})


@pytest.mark.parametrize("f, name", ARGS)
def test_colour_images_are_refused(f, name):
    case = CASES[f]
    cur = case.current(name)
    colour = np.repeat(cur[..., None], 3, axis=2)  # integer dtype: the shape alone must be refused
    h, w = cur.shape
    with pytest.raises(ValueError, match=_pattern(name) + f"a {h}x{w}x3 array looks like a colour image; pass a 2-D"):
        case.call(**{name: colour})


@pytest.mark.parametrize("f, name", ARGS)
def test_scalars_are_refused(f, name):
    with pytest.raises(ValueError, match=_pattern(name) + r"a 0-D array .*; pass a 2-D"):
        CASES[f].call(**{name: np.array(1)})


@pytest.mark.parametrize("f, name", [(f, n) for f, n in ARGS if not CASES[f].flat_ok])
def test_1d_arrays_are_refused_where_an_image_is_needed(f, name):
    case = CASES[f]
    with pytest.raises(ValueError, match=_pattern(name) + r"a 1-D array of shape \(\d+,\); pass a 2-D"):
        case.call(**{name: case.current(name).ravel()})


@pytest.mark.parametrize("f", [f for f, case in CASES.items() if case.flat_ok])
def test_contingency_functions_take_flattened_pixels(f):
    """evaluate_image drops void pixels and passes the rest, flattened: the tables must not change."""
    case = CASES[f]
    flat = {name: case.current(name).ravel() for name in case.checked}
    _assert_same(case.call(**flat), case.call())


def test_a_nan_mask_no_longer_counts_as_foreground():
    nan = np.where(SHIFTED == 1, 1.0, np.nan)  # astype(bool) would make every pixel foreground
    with pytest.raises(ValueError, match="^gt: .*NaN"):
        mask_scores(BLOCK.astype(bool), nan)


# --------------------------------------------------------------------------------------------
# accepted inputs: every integer dtype and bool give the int64 results


def test_known_answers_with_int64():
    assert pooled_miou([image_miou(HALVES, [HALVES])])["all"] == 1.0
    assert count_segments(HALVES) == 2
    np.testing.assert_array_equal(iou_matrix(HALVES, HALVES), np.eye(2))
    r = region_scores(HALVES, [HALVES])
    assert r.covered[0] / r.pixels[0] == 1.0 and r.rand[0] == 1.0 and r.voi[0] == 0.0
    s = mask_scores(BLOCK, SHIFTED)  # 9 shared pixels of 16 each: DSC 18/32
    assert s["dsc"] == pytest.approx(18 / 32)
    assert protocol_scores(BLOCK, DARK, BLOCK)["gtfree_dsc"] == 1.0


@pytest.mark.parametrize("dtype", INT_DTYPES + [np.bool_])
@pytest.mark.parametrize("f", list(CASES))
def test_every_integer_dtype_and_bool_scores_like_int64(f, dtype):
    case = CASES[f]
    want = case.call()
    cast = {name: case.current(name).astype(dtype) for name in case.checked}
    assert all(v.dtype == dtype for v in cast.values())
    _assert_same(case.call(**cast), want)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_miou_of_two_halves_against_themselves_is_one_in_any_dtype(dtype):
    assert pooled_miou([image_miou(HALVES.astype(dtype), [HALVES.astype(dtype)])])["all"] == 1.0


def test_negative_ground_truth_labels_are_accepted():
    gt = HALVES.astype(np.int8) - 1  # -1 (void) and 0
    inter, _, _ = overlap(HALVES, gt)
    np.testing.assert_array_equal(inter, [[8, 0], [0, 8]])
    assert pooled_miou([image_miou(HALVES, [gt])])["all"] == 1.0


def test_integer_masks_count_nonzero_as_foreground():
    _assert_same(mask_scores(BLOCK * 255, SHIFTED.astype(np.uint8) * 7), mask_scores(BLOCK.astype(bool), SHIFTED > 0))


def test_the_image_is_not_checked_as_a_label_map():
    """gt_free_foreground reads the RGB (or grey) image itself: 3-D and float are fine there."""
    want = gt_free_foreground(BLOCK, DARK)
    np.testing.assert_array_equal(want, BLOCK == 1)
    np.testing.assert_array_equal(gt_free_foreground(BLOCK, DARK.astype(np.float64)), want)
    np.testing.assert_array_equal(gt_free_foreground(BLOCK, DARK[..., 0]), want)


def test_the_helpers_return_the_array_unchanged():
    labels = HALVES.astype(np.uint16)
    assert label_map(labels, "x") is labels
    assert label_map(labels.ravel(), "x", ndim=(1, 2)).shape == (16,)
    assert binary_mask(labels, "x") is labels
    np.testing.assert_array_equal(label_map([[0, 1], [2, 3]], "x"), [[0, 1], [2, 3]])
    with pytest.raises(ValueError, match=r"^x: <U1 values; pass an integer label map"):
        label_map(np.array([["a", "b"]]), "x")
