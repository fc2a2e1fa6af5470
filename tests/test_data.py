"""Datasets: the synthetic scenes, the BSDS500 loader (on files written here and on the real copy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from lib.data import DatasetError, DatasetNotFound, load
from lib.data import bsds500
from lib.data.bsds500 import BSDS500
from lib.data.synthetic import SyntheticScenes
from lib.metrics import image_miou, pooled_miou

# --------------------------------------------------------------------------------------------
# synthetic scenes


def test_synthetic_is_deterministic():
    a = SyntheticScenes(n=3, size=(32, 48), seed=0)
    b = SyntheticScenes(n=3, size=(32, 48), seed=0)
    c = SyntheticScenes(n=3, size=(32, 48), seed=1)
    for i in range(3):
        sa, sb, sc = a[i], b[i], c[i]
        np.testing.assert_array_equal(sa.image, sb.image)
        for fa, fb in zip(sa.segmentations, sb.segmentations):
            np.testing.assert_array_equal(fa, fb)
        assert not np.array_equal(sa.image, sc.image)
    # scenes of one dataset differ from each other
    assert not np.array_equal(a[0].image, a[1].image)


def test_synthetic_sample_format():
    ds = SyntheticScenes(n=4, size=(32, 48), seed=3)
    assert len(ds) == 4 and ds.ids == ["scene00", "scene01", "scene02", "scene03"]
    for s in ds:
        assert s.dataset == "synthetic" and s.key == f"synthetic/{s.id}"
        assert s.image.dtype == np.uint8 and s.image.shape == (32, 48, 3)
        assert s.shape == (32, 48)
        assert len(s.segmentations) == 2
        fine, coarse = s.segmentations
        for seg in (fine, coarse):
            assert seg.shape == (32, 48) and np.issubdtype(seg.dtype, np.integer)
            np.testing.assert_array_equal(np.unique(seg), np.arange(seg.max() + 1))  # 0..n-1
        assert fine.max() >= coarse.max()
        assert coarse.max() >= 1  # at least sky and ground
        # every coarse segment is a union of fine segments: each fine label has one coarse label
        pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
        assert len(pairs[0]) == len(np.unique(pairs[0]))


def test_synthetic_some_scene_has_a_two_part_object():
    # fine strictly finer than coarse somewhere, so Fine and Coarse differ on this dataset
    ds = SyntheticScenes(n=6, size=(32, 48), seed=0)
    assert any(s.segmentations[0].max() > s.segmentations[1].max() for s in ds)


def test_synthetic_ids_and_limit():
    assert SyntheticScenes(n=5, limit=2).ids == ["scene00", "scene01"]
    assert SyntheticScenes(n=5, ids=["scene03", "scene01"]).ids == ["scene03", "scene01"]
    with pytest.raises(DatasetError):
        SyntheticScenes(n=2, ids=["scene07"])
    with pytest.raises(ValueError):
        SyntheticScenes(n=0)
    with pytest.raises(ValueError):
        SyntheticScenes(size=(8, 48))
    assert load("synthetic", n=2, size=(32, 48)).ids == ["scene00", "scene01"]
    with pytest.raises(ValueError):
        load("no-such-dataset")


# --------------------------------------------------------------------------------------------
# BSDS500 loader on files in the official layout


def _write_mat(path: Path, segmentations) -> None:
    cell = np.empty((1, len(segmentations)), dtype=object)
    for i, seg in enumerate(segmentations):
        cell[0, i] = {
            "Segmentation": np.asarray(seg, dtype=np.uint16),
            "Boundaries": np.zeros(np.shape(seg), dtype=np.uint8),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"groundTruth": cell})


def _write_jpg(path: Path, h: int, w: int, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path, format="JPEG")


def _fake_bsds(root: Path, ids=("100", "20", "3"), h: int = 6, w: int = 8, split: str = "test") -> dict:
    """Write images and ground truth; return {id: list of segmentations}."""
    rng = np.random.default_rng(0)
    truth = {}
    for n, image_id in enumerate(ids):
        _write_jpg(root / "bsds500" / "images" / split / f"{image_id}.jpg", h, w, 40 * n)
        segs = [rng.integers(0, 1000, size=(h, w)) + 60000 * (k == 0) for k in range(n + 1)]  # values > 255
        _write_mat(root / "bsds500" / "groundTruth" / split / f"{image_id}.mat", segs)
        truth[image_id] = segs
    return truth


def test_bsds_loader_reads_the_official_layout(tmp_path):
    truth = _fake_bsds(tmp_path)
    ds = BSDS500(root=tmp_path, split="test")
    assert ds.ids == ["3", "20", "100"]  # numeric order, not "100" < "20" < "3"
    assert len(ds) == 3 and ds.name == "bsds500/test"
    for sample in ds:
        assert sample.dataset == "bsds500/test"
        assert sample.image.shape == (6, 8, 3) and sample.image.dtype == np.uint8
        segs = truth[sample.id]
        assert len(sample.segmentations) == len(segs) == len(sample.boundaries)
        for read, written in zip(sample.segmentations, segs):
            np.testing.assert_array_equal(read, written)
        assert all(b.dtype == bool and b.shape == (6, 8) for b in sample.boundaries)
    assert ds[2].segmentations[0].max() > 60000  # 16-bit labels survive
    # a slice reads several samples
    assert [s.id for s in ds[1:]] == ["20", "100"]


def test_bsds_limit_and_ids(tmp_path):
    _fake_bsds(tmp_path)
    assert BSDS500(root=tmp_path, limit=2).ids == ["3", "20"]
    assert BSDS500(root=tmp_path, limit=0).ids == []
    assert BSDS500(root=tmp_path, ids=["100", "3"]).ids == ["100", "3"]
    assert BSDS500(root=tmp_path, ids=[100]).ids == ["100"]
    with pytest.raises(DatasetError, match="42"):
        BSDS500(root=tmp_path, ids=["42"])
    with pytest.raises(ValueError):
        BSDS500(root=tmp_path, split="validation")


def test_bsds_root_from_environment(tmp_path, monkeypatch):
    _fake_bsds(tmp_path)
    monkeypatch.setenv("SEGSTUDY_DATA_ROOT", str(tmp_path))
    assert BSDS500().ids == ["3", "20", "100"]


def test_bsds_missing_folder_says_where_and_how_to_fix(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        BSDS500(root=tmp_path, split="test")
    message = str(err.value)
    assert str(tmp_path / "bsds500" / "images" / "test") in message
    assert "python -m lib download bsds500" in message


def test_bsds_missing_ground_truth_is_named(tmp_path):
    _fake_bsds(tmp_path)
    missing = tmp_path / "bsds500" / "groundTruth" / "test" / "20.mat"
    missing.unlink()
    with pytest.raises(DatasetNotFound) as err:
        BSDS500(root=tmp_path)
    assert str(missing) in str(err.value)


def test_bsds_wrong_shape_ground_truth_names_the_file(tmp_path):
    _fake_bsds(tmp_path)
    bad = tmp_path / "bsds500" / "groundTruth" / "test" / "20.mat"
    _write_mat(bad, [np.zeros((5, 8))])  # the image is 6x8
    ds = BSDS500(root=tmp_path)
    ds[0]  # the others still load
    with pytest.raises(DatasetError) as err:
        ds[1]
    assert str(bad) in str(err.value)


def test_bsds_unreadable_mat_names_the_file(tmp_path):
    _fake_bsds(tmp_path)
    bad = tmp_path / "bsds500" / "groundTruth" / "test" / "3.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(DatasetError) as err:
        BSDS500(root=tmp_path)[0]
    assert str(bad) in str(err.value)


def test_bsds_corrupt_jpg_names_the_file(tmp_path):
    _fake_bsds(tmp_path)
    bad = tmp_path / "bsds500" / "images" / "test" / "100.jpg"
    good = bad.read_bytes()
    for content in (b"this is not a jpeg", good[: len(good) // 2]):  # garbage, then truncated
        bad.write_bytes(content)
        with pytest.raises(DatasetError) as err:
            BSDS500(root=tmp_path)[2]
        assert str(bad) in str(err.value)


# --------------------------------------------------------------------------------------------
# the real BSDS500


@pytest.mark.realdata
def test_real_bsds500_test_split(bsds_root):
    ds = BSDS500(root=bsds_root, split="test")
    assert len(ds) == 200
    assert ds.ids[0] == "2018"  # the smallest id in numeric order
    sample = ds[0]
    assert sample.image.dtype == np.uint8 and sample.image.shape[2] == 3
    assert sorted(sample.image.shape[:2]) == [321, 481]
    assert 4 <= len(sample.segmentations) <= 9
    for seg in sample.segmentations:
        assert seg.shape == sample.image.shape[:2]
        assert seg.min() >= 1  # BSDS labels start at 1


@pytest.mark.realdata
def test_real_bsds500_blank_prediction_sanity_numbers(bsds_root):
    # the published check of Kim et al.'s script: one segment per image scores
    # All 0.0458 / Fine 0.0249 / Coarse 0.1001 on the 200 test images
    ds = BSDS500(root=bsds_root, split="test")
    images = []
    for image_id in ds.ids:
        segs, _ = bsds500.read_ground_truth(ds.gt_dir / f"{image_id}.mat", _image_shape(ds.image_dir / f"{image_id}.jpg"))
        images.append(image_miou(np.zeros(segs[0].shape, np.int64), segs))
    assert len(images) == 200
    scores = pooled_miou(images)
    assert round(scores["all"], 4) == 0.0458
    assert round(scores["fine"], 4) == 0.0249
    assert round(scores["coarse"], 4) == 0.1001


def _image_shape(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.height, im.width


@pytest.mark.realdata
def test_real_bsds500_matches_the_manifest(bsds_root):
    assert len(bsds500.manifest()) == 800
    assert bsds500.verify(bsds_root) == []


def test_verify_reports_missing_and_altered_files(tmp_path):
    # an empty root: every manifest file is reported missing
    problems = bsds500.verify(tmp_path)
    assert len(problems) == len(bsds500.manifest()) == 800
    assert all(p.startswith("missing: ") for p in problems)
    # a file with the right name but other bytes is a checksum mismatch
    rel = next(iter(bsds500.manifest()))
    path = tmp_path / "bsds500" / rel
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the original")
    problems = bsds500.verify(tmp_path)
    assert f"checksum mismatch: {path}" in problems
    assert len(problems) == 800


# --------------------------------------------------------------------------------------------
# a copy that lacks some of its split: named before any work, not silently scored on what is left


def _official_ids(split: str = "test") -> list[str]:
    return sorted({Path(rel).stem for rel in bsds500.manifest() if rel.startswith(f"images/{split}/")}, key=int)


@pytest.fixture(scope="module")
def official_copy(tmp_path_factory) -> Path:
    """Tiny files under the 200 official test ids of the manifest (6 x 8 pixels each)."""
    root = tmp_path_factory.mktemp("official")
    for image_id in _official_ids():
        _write_jpg(root / "bsds500" / "images" / "test" / f"{image_id}.jpg", 6, 8)
        _write_mat(root / "bsds500" / "groundTruth" / "test" / f"{image_id}.mat", [np.ones((6, 8))])
    return root


def _partial(official_copy: Path, tmp_path: Path, *files: str) -> Path:
    """A copy of ``official_copy`` without ``files`` (paths relative to bsds500/)."""
    import shutil

    root = tmp_path / "partial"
    shutil.copytree(official_copy, root)
    for rel in files:
        (root / "bsds500" / rel).unlink()
    return root


def test_a_complete_official_copy_opens_whole_or_in_part(official_copy):
    ids = _official_ids()
    assert BSDS500(root=official_copy).ids == ids and len(ids) == 200
    assert BSDS500(root=official_copy, limit=5).ids == ids[:5]
    assert BSDS500(root=official_copy, ids=[ids[7]]).ids == [ids[7]]


def test_an_image_without_its_jpg_is_named(tmp_path):
    """A .mat whose .jpg is gone: the image is missing, not silently left out of the split."""
    _fake_bsds(tmp_path)
    gone = tmp_path / "bsds500" / "images" / "test" / "20.jpg"
    gone.unlink()
    with pytest.raises(DatasetNotFound) as err:
        BSDS500(root=tmp_path)
    message = str(err.value)
    assert str(gone) in message and "python -m lib download bsds500" in message


@pytest.mark.parametrize("files", [("images/test/2018.jpg",),  # its .mat still there
                                   ("images/test/100007.jpg", "groundTruth/test/100007.mat",
                                    "images/test/100039.jpg", "groundTruth/test/100039.mat")])
def test_a_copy_missing_official_images_fails_naming_them(official_copy, tmp_path, files):
    root = _partial(official_copy, tmp_path, *files)
    with pytest.raises(DatasetNotFound) as err:
        BSDS500(root=root)
    message = str(err.value)
    missing = sorted({Path(f).stem for f in files}, key=int)
    assert f"{len(missing)} of its 200 images" in message
    for rel in files:
        assert str(Path(rel)) in message
    assert f"python -m lib download bsds500 --data-root {root}" in message
    assert f"python -m lib verify bsds500 --data-root {root}" in message


def test_a_partial_copy_still_gives_its_first_images_when_they_are_there(official_copy, tmp_path):
    ids = _official_ids()
    root = _partial(official_copy, tmp_path, f"images/test/{ids[-1]}.jpg", f"groundTruth/test/{ids[-1]}.mat")
    assert BSDS500(root=root, limit=5).ids == ids[:5]
    with pytest.raises(DatasetNotFound, match=ids[-1]):
        BSDS500(root=root, limit=-1)  # the whole split
    root = _partial(official_copy, tmp_path / "b", f"images/test/{ids[2]}.jpg", f"groundTruth/test/{ids[2]}.mat")
    with pytest.raises(DatasetNotFound, match=ids[2]):
        BSDS500(root=root, limit=5)  # the first 5 of the split are not the first 5 present


def test_a_notebook_asking_for_the_whole_split_of_a_partial_copy_fails(official_copy, tmp_path):
    from lib import study

    ids = _official_ids()
    sets = dict(synthetic_images=0, synthetic_size=[16, 16])
    assert len(study.evaluation_sets(**sets, bsds_images=3, data_root=str(official_copy)).sets["bsds500/test"]) == 3
    assert len(study.evaluation_sets(**sets, bsds_images=-1, data_root=str(official_copy)).sets["bsds500/test"]) == 200
    root = _partial(official_copy, tmp_path, f"images/test/{ids[10]}.jpg", f"groundTruth/test/{ids[10]}.mat")
    with pytest.raises(DatasetNotFound) as err:
        study.evaluation_sets(**sets, bsds_images=-1, data_root=str(root))
    assert "bsds_images=-1" in str(err.value) and f"images/test/{ids[10]}.jpg" in str(err.value)


def test_a_notebook_asking_for_the_first_images_of_a_partial_copy_gets_them(official_copy, tmp_path):
    from lib import study

    ids = _official_ids()
    root = _partial(official_copy, tmp_path, f"images/test/{ids[10]}.jpg", f"groundTruth/test/{ids[10]}.mat")
    opened = study.evaluation_sets(synthetic_images=0, synthetic_size=[16, 16], bsds_images=3, data_root=str(root))
    assert [s.id for s in opened.sets["bsds500/test"]] == ids[:3]
    assert "the first 3 (by id) of the 199 images present" in opened.notes["bsds500/test"]
