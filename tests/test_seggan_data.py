"""SegGAN's datasets on files written here in each official layout: Stanford Background (regions,
the 600 / 115 split file, the download), PASCAL VOC 2012 + SBD (train_aug), the training crops,
and the study's scene sets."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shared_datasets, write_fake_sbd, write_fake_stanford, write_fake_voc
from lib import study
from lib.data import DatasetError, DatasetNotFound, Sample, load
from lib.data import stanford_background as sb
from lib.data.crops import IGNORE, PAD_COLOUR, Crops, crop, draw_crops, label_map, shrunk

# --------------------------------------------------------------------------------------------
# Stanford Background


def _split_ids(part: str, n: int) -> list[str]:
    return [i for i, p in sb.read_split_file().items() if p == part][:n]


def test_the_split_file_is_600_train_115_test_and_is_redrawn_from_its_ids():
    split = sb.read_split_file()
    assert len(split) == 715 and sum(p == "test" for p in split.values()) == 115
    text = sb.SPLIT_FILE.read_text()
    assert sb.split_file_text(list(split), seed=0) == text  # the shipped file is the documented draw
    assert sb.draw_split(list(split), seed=1) != sb.draw_split(list(split), seed=0)


def test_stanford_loader_reads_regions_with_unknown_as_minus_one(tmp_path):
    ids = _split_ids("train", 2) + _split_ids("test", 1)
    written = write_fake_stanford(tmp_path, ids=ids)
    train = load("stanford_background", root=tmp_path, split="train")
    assert train.ids == sorted(ids[:2]) and train.name == "stanford_background/train"
    s = train[0]
    np.testing.assert_array_equal(s.segmentations[0], written[s.id])
    assert s.segmentations[0][0, 0] == -1 and set(np.unique(s.segmentations[0])) == {-1, 0, 3, 7}
    assert load("stanford_background", root=tmp_path, split="test").ids == ids[2:]
    assert len(load("stanford_background", root=tmp_path, split="all")) == 3


def test_stanford_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(DatasetNotFound, match="python -m lib download stanford_background"):
        load("stanford_background", root=tmp_path)
    ids = _split_ids("train", 1)
    write_fake_stanford(tmp_path, ids=ids)
    base = tmp_path / "stanford_background" / "iccv09Data"
    (base / "labels" / f"{ids[0]}.regions.txt").write_text("0 1 2\n0 1\n")
    with pytest.raises(DatasetError, match=f"{ids[0]}.regions.txt: expected one row"):
        load("stanford_background", root=tmp_path)[0]
    (base / "labels" / f"{ids[0]}.regions.txt").write_text("0 9\n0 1\n")
    with pytest.raises(DatasetError, match="label 9 outside 0..7"):
        load("stanford_background", root=tmp_path)[0]
    (base / "labels" / f"{ids[0]}.regions.txt").write_text("0 1\n0 1\n")  # 2x2 for a 12x16 image
    with pytest.raises(DatasetError, match=r"do not match their image \(12, 16\)"):
        load("stanford_background", root=tmp_path)[0]
    write_fake_stanford(tmp_path, ids=["1234567"])  # not an image of the dataset
    with pytest.raises(DatasetError, match="1234567.jpg"):
        load("stanford_background", root=tmp_path)


def _archive(tmp_path: Path, ids, drop_label: str | None = None) -> Path:
    src = tmp_path / "src"
    write_fake_stanford(src, ids=ids)
    archive = tmp_path / "iccv09Data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted((src / "stanford_background").rglob("*")):
            if path.is_file() and path.name != f"{drop_label}.regions.txt":
                tar.add(path, arcname=str(path.relative_to(src / "stanford_background")))
    return archive


def test_download_checks_the_digest_and_every_file(tmp_path, monkeypatch):
    ids = ["0000047", "0000051"]
    split_file = tmp_path / "split.txt"
    split_file.write_text("0000047 train\n0000051 test\n")
    monkeypatch.setattr(sb, "SPLIT_FILE", split_file)
    archive = _archive(tmp_path, ids)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    root = tmp_path / "data"
    target = sb.download(root, url=archive.as_uri(), sha256=digest, progress=False)
    assert target == root / "stanford_background" and not sb.verify(root)
    assert load("stanford_background", root=root, split="test").ids == ["0000051"]
    with pytest.raises(DatasetError, match="SHA-256 .* differs from the expected 0000"):
        sb.download(tmp_path / "other", url=archive.as_uri(), sha256="0" * 64, progress=False)
    assert not (tmp_path / "other" / "stanford_background").exists()
    broken = _archive(tmp_path / "b", ids, drop_label="0000051")
    with pytest.raises(DatasetError, match=r"(?s)incomplete .*0000051.regions.txt"):
        sb.download(tmp_path / "other", url=broken.as_uri(), sha256=None, progress=False)
    assert not (tmp_path / "other" / "stanford_background").exists()
    with pytest.raises(DatasetError, match="cannot download"):
        sb.download(tmp_path / "other", url=(tmp_path / "absent.tar.gz").as_uri(), progress=False)


# --------------------------------------------------------------------------------------------
# PASCAL VOC 2012 + SBD


def write_voc_and_sbd(root: Path):
    """VOC 2012 with train = {2008_000002, 2007_000039} and val = {2007_000033}; SBD train =
    {2008_000002, 2007_000033}, val = {2008_000003}."""
    voc = write_fake_voc(root, ids=("2008_000002", "2007_000033", "2007_000039"))
    (root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt").write_text(
        "2008_000002\n2007_000039\n")
    sbd = write_fake_sbd(root, train=("2008_000002", "2007_000033"), val=("2008_000003",))
    return voc, sbd


def test_train_aug_is_sbd_and_voc_train_less_voc_val(tmp_path):
    voc, sbd = write_voc_and_sbd(tmp_path)
    ds = load("voc2012_aug", root=tmp_path)
    # 2007_000033 is in the official VOC 2012 val list: never trained on
    assert ds.ids == ["2007_000039", "2008_000002", "2008_000003"] and ds.name == "voc2012_aug/train"
    by_id = {s.id: s for s in ds[:]}
    both = by_id["2008_000002"]  # in VOC train and SBD: VOC's own PNG, its void border not counted
    cls, _ = voc["2008_000002"]
    np.testing.assert_array_equal(both.segmentations[0], np.where(cls == 255, -1, cls.astype(int)))
    assert both.meta["source"] == "VOCSegmentation"
    only_sbd = by_id["2008_000003"]
    np.testing.assert_array_equal(only_sbd.segmentations[0], sbd["2008_000003"])
    assert only_sbd.meta["source"] == "SBDataset"


def test_train_aug_absent_names_what_to_download(tmp_path):
    write_fake_voc(tmp_path)
    with pytest.raises(DatasetNotFound, match=r"(?s)SBD not found: .*sbd.*python -m lib download voc2012_aug"):
        load("voc2012_aug", root=tmp_path)


# --------------------------------------------------------------------------------------------
# training crops


def _sample(h=6, w=8) -> Sample:
    image = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    labels = np.tile(np.arange(w, dtype=np.int32), (h, 1)) % 5
    labels[0, 0] = -1
    return Sample("toy", "a", image, (labels,))


def test_a_crop_lands_where_its_fractions_say():
    image, labels = shrunk(_sample(), None)
    assert labels[0, 0] == IGNORE and labels.dtype == np.uint8
    out_image, out_labels = crop(image, labels, 4, top=0.99, left=0.0, flip=False)
    np.testing.assert_array_equal(out_image, image[2:6, 0:4])  # room 3 rows: int(0.99 * 3) = 2
    out_image, out_labels = crop(image, labels, 4, top=0.0, left=0.5, flip=True)
    np.testing.assert_array_equal(out_labels, labels[0:4, 2:6][:, ::-1])  # room 5 columns: int(2.5) = 2


def test_a_small_image_is_padded_with_the_mean_colour_and_ignored_labels():
    image, labels = shrunk(_sample(6, 8), None)
    out_image, out_labels = crop(image, labels, 16, 0.3, 0.7, False)
    assert out_image.shape == (16, 16, 3) and out_labels.shape == (16, 16)
    np.testing.assert_array_equal(out_image[:6, :8], image)
    assert (out_labels[6:] == IGNORE).all() and (out_labels[:, 8:] == IGNORE).all()
    assert (out_image[6:] == PAD_COLOUR).all()


def test_crop_keys_come_from_the_generator_alone():
    a = draw_crops(10, 4, torch.Generator().manual_seed(3))
    b = draw_crops(10, 4, torch.Generator().manual_seed(3))
    assert a == b and len({k[0] for k in a}) == 4  # distinct images when there are enough
    assert len(draw_crops(2, 5, torch.Generator().manual_seed(0))) == 5  # repeats when there are not
    crops = Crops([_sample()], 4)
    image, labels = crops[(0, 0.0, 0.0, False)]
    assert image.shape == (3, 4, 4) and image.dtype == torch.uint8 and labels.dtype == torch.int64


def test_label_maps_refuse_what_would_read_as_ignored():
    s = _sample()
    bad = Sample("toy", "b", s.image, (np.full(s.shape, 300),))
    with pytest.raises(ValueError, match="toy/b: label 300"):
        label_map(bad)
    with pytest.raises(ValueError, match="no segmentation"):
        label_map(Sample("toy", "c", s.image))


def test_shrinking_keeps_labels_nearest():
    s = Sample("toy", "d", np.zeros((40, 60, 3), np.uint8), (np.tile(np.arange(60) // 20, (40, 1)),))
    image, labels = shrunk(s, 30)
    assert image.shape == (20, 30, 3) and labels.shape == (20, 30) and set(np.unique(labels)) == {0, 1, 2}


# --------------------------------------------------------------------------------------------
# the study's scene sets


def test_scene_sets_fail_or_skip_an_absent_dataset_by_name(tmp_path):
    with pytest.raises(DatasetNotFound, match="stanford_images=-1 asks for Stanford Background train"):
        study.scene_sets(synthetic_images=4, synthetic_size=[32, 32], stanford_images=-1, data_root=str(tmp_path))
    opened = study.scene_sets(synthetic_images=4, synthetic_size=[32, 32], stanford_images=-1,
                              data_root=str(tmp_path), missing="skip")
    assert set(opened.sets) == {"synthetic_pets/train", "synthetic_pets/test"} and "stanford_background" in opened.absent
    assert len(opened.sets["synthetic_pets/test"]) == 2


def test_scene_sets_read_stanford_and_voc_and_say_they_are_subsets(tmp_path):
    write_fake_stanford(tmp_path, ids=_split_ids("train", 2) + _split_ids("test", 2))
    write_voc_and_sbd(tmp_path)
    opened = study.scene_sets(synthetic_images=0, synthetic_size=[32, 32], stanford_images=-1, voc_images=-1,
                              data_root=str(tmp_path))
    assert [len(opened.sets[k]) for k in ("stanford_background/train", "stanford_background/test",
                                          "voc2012/train", "voc2012/test")] == [2, 2, 3, 3]
    assert "a subset: the full dataset has 600 train / 115 test" in opened.notes["stanford_background"]
    assert "10582 train / 1449 test" in opened.notes["voc2012"]
    assert (opened.sets["voc2012/test"][0].segmentations[0] == -1).any()  # the void border is not counted


@pytest.mark.realdata
def test_scene_sets_on_the_staged_oxford_pet_copy():
    root = shared_datasets()
    if root is None or not (root / "oxford_iiit_pet").is_dir():
        pytest.skip("the staged Oxford-IIIT Pet copy is not here")
    opened = study.scene_sets(synthetic_images=0, synthetic_size=[32, 32], pet_images=-1, data_root=str(root))
    train, test = opened.sets["oxford_pet/train"], opened.sets["oxford_pet/test"]
    assert (len(train), len(test)) == (59, 41)
    assert {int(v) for s in train[:5] for v in np.unique(s.segmentations[0])} <= {0, 1, 2}
    assert "a subset" in opened.notes["oxford_pet"]
