"""PH2 and lung CT loaders on files written in their layouts, the synthetic lesions, and the
staged real copies when present."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_datasets, write_fake_lung, write_fake_ph2
from lib.data import DatasetNotFound, load
from lib.data.lung_ct import window


def test_ph2_layout_masks_and_diagnoses(tmp_path):
    masks = write_fake_ph2(tmp_path, ids=("IMD010", "IMD002", "IMD031"))
    ds = load("ph2", root=tmp_path)
    assert ds.ids == ["IMD002", "IMD010", "IMD031"]
    s = ds[0]
    assert s.image.shape == (20, 24, 3) and s.image.dtype == np.uint8
    np.testing.assert_array_equal(s.segmentations[0], masks["IMD002"])
    # the fake spreadsheet marks the ids in the order written: common, atypical, melanoma
    assert [ds[i].meta["diagnosis"] for i in range(3)] == ["atypical nevus", "common nevus", "melanoma"]


def test_ph2_without_spreadsheet_and_missing_files(tmp_path):
    write_fake_ph2(tmp_path, diagnoses=False)
    ds = load("ph2", root=tmp_path)
    assert ds[0].meta == {}
    (tmp_path / "ph2" / "PH2Dataset" / "PH2 Dataset images" / "IMD002" / "IMD002_lesion" / "IMD002_lesion.bmp").unlink()
    with pytest.raises(DatasetNotFound, match="IMD002_lesion.bmp"):
        ds[0]
    with pytest.raises(DatasetNotFound, match="PH2"):
        load("ph2", root=tmp_path / "nowhere")


def test_lung_windowing_and_layout(tmp_path):
    slices = write_fake_lung(tmp_path)
    s = load("lung_ct", root=tmp_path)[0]
    assert s.image.shape == (16, 16, 3)
    # lung window: level -600, width 1500 -> -1350 .. 150 mapped to 0 .. 255
    assert s.image[0, 0, 0] == round((-1000 + 1350) / 1500 * 255)
    assert s.image[5, 4, 0] == round((-850 + 1350) / 1500 * 255)
    assert s.image[8, 8, 0] == round((40 + 1350) / 1500 * 255)
    np.testing.assert_array_equal(s.segmentations[0], (slices[s.id] == -850).astype(np.uint8))
    own = window(slices[s.id], None)  # the slice's own range
    assert own.min() == 0 and own.max() == 255
    with pytest.raises(DatasetNotFound, match="2d_images"):
        load("lung_ct", root=tmp_path / "nowhere")


def test_synthetic_lesions_are_deterministic_with_a_central_lesion():
    a, b = load("synthetic_lesions", n=2, size=(48, 64)), load("synthetic_lesions", n=2, size=(48, 64))
    np.testing.assert_array_equal(a[1].image, b[1].image)
    mask = a[0].segmentations[0]
    assert set(np.unique(mask)) == {0, 1} and 0.05 < mask.mean() < 0.5
    assert not mask[0].any() and not mask[-1].any()  # the lesion does not touch the border
    # darker than the skin around it
    assert a[0].image[mask == 1].mean() < a[0].image[24, :][mask[24, :] == 0].mean()


@pytest.mark.realdata
def test_staged_ph2_and_lung_ct():
    root = shared_datasets()
    if root is None or not (root / "ph2").is_dir() or not (root / "lung_ct").is_dir():
        pytest.skip("staged PH2 / lung CT not available")
    ph2 = load("ph2", root=root)
    assert len(ph2) == 60
    assert {d: sum(v == d for v in ph2.diagnoses.values()) for d in ("common nevus", "atypical nevus", "melanoma")} == {
        "common nevus": 80, "atypical nevus": 80, "melanoma": 40}  # the spreadsheet covers all 200
    s = ph2[0]
    assert s.segmentations[0].shape == s.image.shape[:2] and 0 < s.segmentations[0].mean() < 1
    lung = load("lung_ct", root=root)
    assert len(lung) == 50 and lung[0].image.shape == (512, 512, 3)


def test_code_form_on_a_staged_ph2_image_stops_like_the_authors_log():
    """The authors' printed log (SSCT's S3Net.ipynb): 63, 31, 5, 4, 2, 2 labels, then the stop after
    6 updates with 2 labels. The code form here, on a real 256 x 256 PH2 image, stops early too."""
    import torch

    from lib.methods import S3Net

    root = shared_datasets()
    if root is None or not (root / "ph2").is_dir():
        pytest.skip("staged PH2 not available")
    s = load("ph2", root=root)[0]
    r = S3Net(form="code").optimise([s.image], [(0, s.key)], torch.device("cpu"))
    assert 6 <= int(r.iterations[0]) <= 12 and int(r.n_labels[0]) <= 3
    assert r.label_history[0][0] > 40  # it starts from most of the 64 classes


def test_broken_files_are_named(tmp_path):
    from PIL import Image

    from lib.data import DatasetError

    write_fake_ph2(tmp_path, ids=("IMD002",), diagnoses=False)
    folder = tmp_path / "ph2" / "PH2Dataset" / "PH2 Dataset images" / "IMD002"
    (folder / "IMD002_Dermoscopic_Image" / "IMD002.bmp").write_bytes(b"not a bitmap")
    with pytest.raises(DatasetError, match="IMD002.bmp"):
        load("ph2", root=tmp_path)[0]
    write_fake_ph2(tmp_path, ids=("IMD002",), diagnoses=False)  # repaired; now a mask of the wrong size
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "IMD002_lesion" / "IMD002_lesion.bmp")
    with pytest.raises(DatasetError, match="does not match"):
        load("ph2", root=tmp_path)[0]

    write_fake_lung(tmp_path)
    base = tmp_path / "lung_ct"
    (base / "2d_masks" / "ID_0000_Z_0142.tif").unlink()
    with pytest.raises(DatasetNotFound, match="ID_0000_Z_0142.tif"):
        load("lung_ct", root=tmp_path)[0]
    (base / "2d_images" / "ID_0001_Z_0146.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(DatasetError, match="ID_0001_Z_0146.tif"):
        load("lung_ct", root=tmp_path)[1]
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(base / "2d_images" / "ID_0001_Z_0146.tif")  # RGB, not one slice
    with pytest.raises(DatasetError, match="one 2-D slice"):
        load("lung_ct", root=tmp_path)[1]


def test_lesion_cache_is_recomputed_when_the_mask_changes(tmp_path):
    from dataclasses import replace

    import torch

    from lib.evaluation import LesionEvaluator
    from lib.methods import Blank
    from lib.runs import run_method

    s = load("synthetic_lesions", n=1, size=(24, 32))[0]
    kw = dict(device=torch.device("cpu"), progress=False, evaluator=LesionEvaluator())
    first = run_method(Blank(), [s], [0], tmp_path, **kw)[0]
    grown = replace(s, segmentations=(s.segmentations[0] | np.roll(s.segmentations[0], 1, axis=0),))  # one row taller
    again = run_method(Blank(), [grown], [0], tmp_path, **kw)[0]
    assert again.evaluation["gt_pixels"] == grown.segmentations[0].sum() != first.evaluation["gt_pixels"]


def test_lesion_summary_in_percent_with_hausdorff_over_defined_images():
    from lib.evaluation import LesionEvaluator

    nan = float("nan")
    evals = [
        {"authors_dsc": 0.5, "authors_hausdorff": nan, "gtfree_dsc": 0.0, "gtfree_hausdorff": nan, "gt_at_border": 1.0},
        {"authors_dsc": 1.0, "authors_hausdorff": 3.0, "gtfree_dsc": 1.0, "gtfree_hausdorff": 5.0, "gt_at_border": 0.0},
    ]
    out = LesionEvaluator().summarize(evals)
    assert out["authors_dsc"] == 75.0 and out["gtfree_dsc"] == 50.0
    assert out["authors_hausdorff"] == 3.0 and out["gtfree_hausdorff"] == 5.0
    assert out["authors_empty"] == 1.0 and out["gtfree_empty"] == 1.0 and out["gt_at_border"] == 1.0


def test_cached_results_are_recomputed_when_the_pixels_change(tmp_path):
    """Same id, other pixels (e.g. another intensity window): the stored record is stale."""
    from dataclasses import replace

    import torch

    from lib.evaluation import LesionEvaluator
    from lib.methods import Blank
    from lib.runs import image_fingerprint, run_method

    s = load("synthetic_lesions", n=1, size=(24, 32))[0]
    kw = dict(device=torch.device("cpu"), progress=False, evaluator=LesionEvaluator())
    run_method(Blank(), [s], [0], tmp_path, **kw)
    (path,) = tmp_path.rglob("*.npz")
    assert str(np.load(path)["image"]) == image_fingerprint(s.image)
    darker = replace(s, image=(s.image // 2).astype(np.uint8))
    run_method(Blank(), [darker], [0], tmp_path, **kw)
    assert str(np.load(path)["image"]) == image_fingerprint(darker.image) != image_fingerprint(s.image)
