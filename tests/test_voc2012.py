"""The PASCAL VOC 2012 loader on files written in the official layout, and the 150-image list."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_fake_voc
from lib.data import DatasetNotFound, load
from lib.data.voc2012 import VAL150, VAL_LIST, draw_subset
from lib.evaluation import evaluate_image


def _ids(path):
    return [l for l in path.read_text().split() if l]


def test_the_150_image_list_is_drawn_reproducibly_from_the_official_val_list():
    val = _ids(VAL_LIST)
    assert len(val) == 1449 and val[0] == "2007_000033" and len(set(val)) == 1449
    assert _ids(VAL150) == draw_subset(val, 150, seed=2012)
    assert set(_ids(VAL150)) <= set(val) and len(set(_ids(VAL150))) == 150


def test_object_ground_truth_with_the_void_dropped(tmp_path):
    written = write_fake_voc(tmp_path)
    ds = load("voc2012", root=tmp_path, subset=None)
    assert ds.ids == ["2007_000033", "2007_000042"] and ds.name == "voc2012/val"
    s = ds[0]
    (gt,) = s.segmentations
    cls, obj = written[s.id]
    np.testing.assert_array_equal(gt == -1, obj == 255)  # void -> does not count
    assert set(np.unique(gt)) == {-1, 0, 1, 2}  # background and two instances
    # a prediction equal to the objects scores 1, whatever it says on the void pixels
    pred = np.where(obj == 255, 7, obj)
    ev = evaluate_image(pred, s.segmentations)
    np.testing.assert_allclose(ev.miou.scores[0], 1.0)


def test_class_ground_truth_and_void_kept(tmp_path):
    written = write_fake_voc(tmp_path)
    s = load("voc2012", root=tmp_path, subset=None, ground_truth="class", void="keep")[1]
    (gt,) = s.segmentations
    cls, _ = written[s.id]
    np.testing.assert_array_equal(gt, cls)  # the two persons are one class segment; 255 stays
    assert set(np.unique(gt)) == {0, 15, 255}


def test_val150_needs_those_images_and_bad_parameters_are_named(tmp_path):
    write_fake_voc(tmp_path)
    ds = load("voc2012", root=tmp_path)  # the default 150-image list
    assert len(ds) == 150
    with pytest.raises(DatasetNotFound, match="JPEGImages"):
        ds[0]  # not written by the test: the error names the missing file
    with pytest.raises(ValueError, match="ground_truth"):
        load("voc2012", root=tmp_path, ground_truth="instances")
    with pytest.raises(ValueError, match="void"):
        load("voc2012", root=tmp_path, void="ignore")


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFound, match="python -m lib download voc2012"):
        load("voc2012", root=tmp_path / "nowhere")


def test_cli_evaluates_voc(tmp_path, capsys):
    import json

    from lib.cli import main
    from lib.files import save_label_map

    written = write_fake_voc(tmp_path)
    pred = tmp_path / "pred"
    for image_id, (_, obj) in written.items():
        save_label_map(pred / f"{image_id}.png", np.where(obj == 255, 0, obj))
    assert main(["evaluate", "voc2012", "--pred", str(pred), "--data-root", str(tmp_path), "--split", "val", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["all"] == pytest.approx(1.0) and out["images"] == 2
    assert out["pri"] == pytest.approx(1.0) and out["voi"] == pytest.approx(0.0, abs=1e-12)
