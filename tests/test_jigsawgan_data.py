"""JigsawGAN's datasets: Animals-90, Oxford-IIIT Pet (trimaps, the 80/20 split file), the built-in
synthetic pets and the tensor batches (on files written here, and on the staged real copies)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_datasets
from lib.data import DatasetError, DatasetNotFound, Sample, load
from lib.data import oxford_pet
from lib.data.animals90 import Animals90
from lib.data.oxford_pet import CLASSES, OxfordPet, authors_split, read_list, read_split_file, read_trimap
from lib.data.synthetic import SyntheticPets
from lib.data.tensors import to_tensors

FULL_TRAINVAL = Path("oxford_iiit_pet/oxford-iiit-pet/annotations/full_original_lists/trainval.txt")

# --------------------------------------------------------------------------------------------
# writers of tiny copies in each dataset's own layout


def write_fake_animals(root: Path, classes=None, inner: bool = True, shape=(10, 12)) -> Path:
    """Kaggle's layout: animals90/animals/animals/<class>/<hash>.jpg (or without the inner animals/)."""
    classes = classes or {"cat": ["b2", "a1", "c3"], "dog": ["x9", "d4"]}
    base = root / "animals90" / "animals" / ("animals" if inner else "")
    for k, (cls, stems) in enumerate(classes.items()):
        (base / cls).mkdir(parents=True, exist_ok=True)
        for j, stem in enumerate(stems):
            Image.fromarray(np.full((*shape, 3), 20 * k + j, np.uint8)).save(base / cls / f"{stem}.jpg")
    return base


def trimap_of(shape, seed: int = 0) -> np.ndarray:
    """A trimap with values 1 (pet), 2 (background), 3 (border): a box with a 1-pixel border."""
    h, w = shape
    t = np.full(shape, 2, np.uint8)
    t[1 + seed % 2 : h - 1, 1 : w - 1] = 3
    t[2 + seed % 2 : h - 2, 2 : w - 2] = 1
    return t


def write_fake_pets(root: Path, trainval, test=(), shape=(12, 16), torchvision_root: bool = False) -> Path:
    """torchvision's layout: oxford_iiit_pet/oxford-iiit-pet/{images/<id>.jpg, annotations/trimaps/<id>.png,
    annotations/trainval.txt, test.txt}. The lists have the official columns, a '#' header and CRLF."""
    base = root / "oxford-iiit-pet" if torchvision_root else root / "oxford_iiit_pet" / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    for k, image_id in enumerate([*trainval, *test]):
        Image.fromarray(np.full((*shape, 3), 100 + k, np.uint8)).save(base / "images" / f"{image_id}.jpg")
        Image.fromarray(trimap_of(shape, k)).save(base / "annotations" / "trimaps" / f"{image_id}.png")
    header = "#Image CLASS-ID SPECIES BREED ID\r\n#ID: 1:37 Class ids\r\n"
    for name, ids in (("trainval.txt", trainval), ("test.txt", test)):
        rows = "".join(f"{i} 1 {1 if i[0].isupper() else 2} 1\r\n" for i in ids)
        (base / "annotations" / name).write_bytes((header + rows).encode())
    return base


def split_ids(n_train: int = 3, n_val: int = 2) -> tuple[list[str], list[str]]:
    """The first ids of each part of the repository's split file."""
    assignment = read_split_file()
    return ([i for i, p in assignment.items() if p == "train"][:n_train],
            [i for i, p in assignment.items() if p == "val"][:n_val])


# --------------------------------------------------------------------------------------------
# Animals-90


def test_animals90_ids_classes_and_samples(tmp_path):
    write_fake_animals(tmp_path)
    ds = Animals90(root=tmp_path)
    assert ds.ids == ["cat/a1", "cat/b2", "cat/c3", "dog/d4", "dog/x9"] and len(ds) == 5
    assert ds.name == "animals90" and ds.known_classes == ["cat", "dog"]
    s = ds[3]
    assert s.dataset == "animals90" and s.id == "dog/d4" and s.meta == {"class": "dog"}
    assert s.image.shape == (10, 12, 3) and s.image.dtype == np.uint8 and s.segmentations == ()
    assert Animals90(root=tmp_path, classes=["dog"]).ids == ["dog/d4", "dog/x9"]
    assert Animals90(root=tmp_path, limit=2).ids == ["cat/a1", "cat/b2"]
    assert len(Animals90(root=tmp_path, limit=-1)) == 5
    assert load("animals90", root=tmp_path, classes=["cat"]).ids == ["cat/a1", "cat/b2", "cat/c3"]


def test_animals90_without_the_inner_folder(tmp_path):
    write_fake_animals(tmp_path, inner=False)
    assert Animals90(root=tmp_path).ids[0] == "cat/a1"


def test_animals90_unknown_class_is_named(tmp_path):
    write_fake_animals(tmp_path)
    with pytest.raises(DatasetError, match=r"zebra.*known: cat, dog"):
        Animals90(root=tmp_path, classes=["cat", "zebra"])


def test_animals90_missing_folder_names_the_path_and_the_source(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        Animals90(root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "animals90" / "animals" / "animals") in message
    assert "iamsouravbanerjee/animal-image-dataset-90-different-animals" in message


# --------------------------------------------------------------------------------------------
# Oxford-IIIT Pet


def test_trimap_values_map_to_pet_background_border(tmp_path):
    trimap = np.array([[1, 2, 3], [3, 2, 1]], np.uint8)
    Image.fromarray(trimap).save(tmp_path / "t.png")
    got = read_trimap(tmp_path / "t.png")
    np.testing.assert_array_equal(got, [[0, 1, 2], [2, 1, 0]])
    assert got.dtype == np.uint8
    assert CLASSES == ("pet", "background", "border")


def test_oxford_pet_samples_and_official_splits(tmp_path):
    train, val = split_ids()
    trainval = [val[0], *train, val[1]]
    write_fake_pets(tmp_path, trainval, test=["Bombay_1", "pug_2"])
    ds = OxfordPet(root=tmp_path, split="trainval")
    assert ds.ids == trainval and ds.name == "oxford_pet/trainval"
    assert OxfordPet(root=tmp_path, split="test").ids == ["Bombay_1", "pug_2"]
    s = ds[1]
    assert s.dataset == "oxford_pet/trainval" and s.id == trainval[1]
    assert s.image.shape == (12, 16, 3) and s.image.dtype == np.uint8
    (mask,) = s.segmentations
    assert mask.dtype == np.uint8 and mask.shape == (12, 16)
    np.testing.assert_array_equal(mask, trimap_of((12, 16), 1) - 1)
    assert OxfordPet(root=tmp_path, split="test")[1].meta == {"species": "dog", "breed": "pug", "class_id": 1}
    assert OxfordPet(root=tmp_path, split="test", limit=1).ids == ["Bombay_1"]
    assert load("oxford_pet", root=tmp_path, split="test").ids == ["Bombay_1", "pug_2"]
    with pytest.raises(ValueError, match="split='validation'"):
        OxfordPet(root=tmp_path, split="validation")


def test_list_files_skip_comments_and_tolerate_crlf(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes(b"#Image CLASS-ID SPECIES BREED ID\r\nAbyssinian_100 1 1 1\r\n\r\nyorkshire_terrier_9 37 2 25\r\n")
    assert read_list(path) == ["Abyssinian_100", "yorkshire_terrier_9"]


def test_train_and_val_are_the_split_file_restricted_to_present_ids(tmp_path):
    train, val = split_ids(4, 3)
    trainval = [val[2], train[3], train[0], val[0], train[1]]  # a subset, in a list order of its own
    write_fake_pets(tmp_path, trainval)
    assert OxfordPet(root=tmp_path, split="train").ids == [train[3], train[0], train[1]]
    assert OxfordPet(root=tmp_path, split="val").ids == [val[2], val[0]]
    assert OxfordPet(root=tmp_path, split="train")[0].dataset == "oxford_pet/train"


def test_an_id_missing_from_the_split_file_is_an_error(tmp_path):
    train, _ = split_ids(1, 0)
    write_fake_pets(tmp_path, [train[0], "Not_a_pet_7"])
    with pytest.raises(DatasetError, match=r"trainval\.txt lists Not_a_pet_7.*oxford_pet_trainval_split\.txt"):
        OxfordPet(root=tmp_path, split="train")
    assert len(OxfordPet(root=tmp_path, split="trainval")) == 2  # the official split itself still opens


def test_torchvision_root_layout_is_accepted(tmp_path):
    write_fake_pets(tmp_path, ["Abyssinian_1"], torchvision_root=True)
    assert OxfordPet(root=tmp_path, split="trainval").ids == ["Abyssinian_1"]


def test_oxford_pet_missing_names_the_path_and_the_download(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        OxfordPet(root=tmp_path, split="test")
    message = str(err.value)
    assert str(tmp_path / "oxford_iiit_pet" / "oxford-iiit-pet") in message
    assert "OxfordIIITPet" in message and "download=True" in message and "robots.ox.ac.uk" in message


@pytest.mark.parametrize("bad", [0, 4, 255])
def test_a_bad_trimap_value_is_named(tmp_path, bad):
    base = write_fake_pets(tmp_path, ["Abyssinian_1"])
    t = trimap_of((12, 16))
    t[0, 0] = bad
    Image.fromarray(t).save(base / "annotations" / "trimaps" / "Abyssinian_1.png")
    with pytest.raises(DatasetError, match=r"Abyssinian_1\.png"):
        OxfordPet(root=tmp_path, split="trainval")[0]


def test_a_trimap_of_another_size_is_named(tmp_path):
    base = write_fake_pets(tmp_path, ["Abyssinian_1"])
    Image.fromarray(trimap_of((12, 15))).save(base / "annotations" / "trimaps" / "Abyssinian_1.png")
    with pytest.raises(DatasetError, match=r"Abyssinian_1\.png.*does not match"):
        OxfordPet(root=tmp_path, split="trainval")[0]


# --------------------------------------------------------------------------------------------
# the 80/20 split


def test_the_split_is_the_authors_draw():
    """finetune.py: np.random.seed(42); indices = np.arange(n); np.random.shuffle(indices); the
    first int(0.8 n) train; for a fraction, np.random.shuffle(np.arange(n_train)) and the first
    int(n_train * f) of the train part in that order. The same statements, on numpy's global
    generator as the authors run them, give the same parts and orders."""
    ids = [f"pet_{i}" for i in range(53)]
    np.random.seed(42)
    indices = np.arange(len(ids))
    np.random.shuffle(indices)
    train, val = indices[: int(len(ids) * 0.8)], indices[int(len(ids) * 0.8):]
    sub = np.arange(len(train))
    np.random.shuffle(sub)
    split = authors_split(ids)
    assert list(split) == ids  # in the list's order
    assert {i for i, (p, _) in split.items() if p == "train"} == {ids[i] for i in train}
    assert [i for i, (p, k) in sorted(split.items(), key=lambda kv: kv[1][1]) if p == "val"] == [ids[i] for i in val]
    for fraction in (0.1, 0.5, 1.0):
        theirs = {ids[i] for i in train[sub[: int(len(train) * fraction)]]}
        ours = {i for i, (p, k) in split.items() if p == "train" and k < int(len(train) * fraction)}
        assert ours == theirs, fraction


def test_the_shipped_split_file_is_the_authors_draw_of_its_own_ids():
    ids = list(read_split_file())  # the official trainval list's order
    text = oxford_pet.SPLIT_FILE.read_text()
    body = "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))
    assert body == "".join(f"{i} {p} {k}\n" for i, (p, k) in authors_split(ids).items())


def test_the_shipped_split_file():
    assignment = read_split_file()
    assert len(assignment) == 3680
    assert sum(v == "train" for v in assignment.values()) == 2944
    assert sum(v == "val" for v in assignment.values()) == 736
    assert oxford_pet.SPLIT_FILE.read_text().startswith("#")


def test_the_split_file_is_reproducible_from_the_official_list():
    root = shared_datasets()
    if root is None or not (root / FULL_TRAINVAL).is_file():
        pytest.skip("the staged Oxford-IIIT Pet full official lists are not available")
    assert oxford_pet.split_file_text(root / FULL_TRAINVAL) == oxford_pet.SPLIT_FILE.read_text()
    assert list(read_split_file()) == read_list(root / FULL_TRAINVAL)


# --------------------------------------------------------------------------------------------
# synthetic pets


def test_synthetic_pets_are_deterministic():
    a, b, c = SyntheticPets(n=3, seed=0), SyntheticPets(n=3, seed=0), SyntheticPets(n=3, seed=1)
    for i in range(3):
        np.testing.assert_array_equal(a[i].image, b[i].image)
        np.testing.assert_array_equal(a[i].segmentations[0], b[i].segmentations[0])
        assert not np.array_equal(a[i].image, c[i].image)
    assert not np.array_equal(a[0].image, a[1].image)
    # an image depends on (seed, id) only, not on n
    np.testing.assert_array_equal(SyntheticPets(n=8, seed=0)[2].image, a[2].image)


def test_synthetic_pets_format_and_mask():
    ds = SyntheticPets(n=6, size=(48, 64), seed=4)
    assert ds.ids == ["000", "001", "002", "003", "004", "005"] and ds.name == "synthetic_pets"
    assert load("synthetic_pets", n=2).ids == ["000", "001"]
    for s in ds:
        (mask,) = s.segmentations
        assert s.dataset == "synthetic_pets"
        assert s.image.shape == (48, 64, 3) and s.image.dtype == np.uint8
        assert mask.shape == (48, 64) and mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 1, 2}
        assert 0.05 < (mask == 0).mean() < 0.6
        # the band separates object and background: no object pixel touches a background pixel
        pet, ground = mask == 0, mask == 1
        assert not (pet[1:] & ground[:-1]).any() and not (pet[:-1] & ground[1:]).any()
        assert not (pet[:, 1:] & ground[:, :-1]).any() and not (pet[:, :-1] & ground[:, 1:]).any()
        # object and background differ, but not in one flat colour each
        assert np.abs(s.image[pet].mean(0) - s.image[ground].mean(0)).max() > 15
        assert s.image[pet].std(0).min() > 3 and s.image[ground].std(0).min() > 3


def test_synthetic_pets_border_width():
    thin = SyntheticPets(n=4, border=1)
    wide = SyntheticPets(n=4, border=4)
    none = SyntheticPets(n=4, border=0)
    for i in range(4):
        inside = thin[i].segmentations[0] != 1  # border 1: the band lies inside the outline
        np.testing.assert_array_equal(inside, none[i].segmentations[0] == 0)
        assert (wide[i].segmentations[0] == 2).sum() > 2.5 * (thin[i].segmentations[0] == 2).sum()
        assert 2 not in none[i].segmentations[0]
        np.testing.assert_array_equal(thin[i].image, none[i].image)  # the band does not change the image


# --------------------------------------------------------------------------------------------
# tensors


def _sample(image, mask=None, image_id="x") -> Sample:
    return Sample("test", image_id, image, () if mask is None else (mask,))


def test_to_tensors_shapes_and_nearest_masks():
    rng = np.random.default_rng(0)
    samples = [_sample(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8), rng.integers(0, 3, (30, 50)).astype(np.uint8))
               for _ in range(3)]
    x, y = to_tensors(samples, size=16, image_resize="bilinear")
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.uint8
    assert y.shape == (3, 16, 16) and y.dtype == torch.int64
    assert set(torch.unique(y).tolist()) <= {0, 1, 2}
    # bilinear images come with PIL's NEAREST masks (pixel centres)
    np.testing.assert_array_equal(y[0].numpy(), np.asarray(Image.fromarray(samples[0].segmentations[0])
                                                          .resize((16, 16), Image.NEAREST)))
    # nearest: the authors' fine-tuning, rows and columns floor(i * 30 / 16) of images and masks alike
    xn, yn = to_tensors(samples, size=16, image_resize="nearest")
    rows, cols = (np.arange(16) * 30) // 16, (np.arange(16) * 50) // 16
    np.testing.assert_array_equal(xn[0].permute(1, 2, 0).numpy(), samples[0].image[rows][:, cols])
    np.testing.assert_array_equal(yn[0].numpy(), samples[0].segmentations[0][rows][:, cols])
    assert not torch.equal(x, xn)


def test_nearest_is_torchvisions_tensor_resize_not_pils():
    """The authors resize the ToTensor'd image and trimap stacked: torch's nearest (rows 0, 7,
    15 ... of 500), not PIL's NEAREST (rows 3, 11, 19 ...)."""
    from torchvision import transforms

    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (500, 375, 3), dtype=np.uint8)
    trimap = rng.integers(1, 4, (500, 375)).astype(np.uint8)
    both = torch.cat([transforms.ToTensor()(Image.fromarray(image)), transforms.ToTensor()(Image.fromarray(trimap))])
    theirs = transforms.Resize((64, 64), interpolation=transforms.InterpolationMode.NEAREST)(both)
    x, y = to_tensors([_sample(image, trimap - 1)], size=64, image_resize="nearest")
    assert torch.equal(x[0], (theirs[:3] * 255).round().byte())
    assert torch.equal(y[0], (theirs[3] * 255).long() - 1)  # the authors' tensor_trimap
    assert torch.equal(x[0, :, 1, 0], torch.from_numpy(image[7, 0]))  # row 7, where PIL takes row 11
    pil = np.asarray(Image.fromarray(image).resize((64, 64), Image.NEAREST))
    assert (pil[1, 0] == image[11, 2]).all()  # pixel centres: floor((i + 0.5) * 500 / 64)


def test_to_tensors_bilinear_is_torchvisions_default_resize():
    from torchvision import transforms

    image = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    x, y = to_tensors([_sample(image)], size=12, image_resize="bilinear")
    expected = np.asarray(transforms.Resize((12, 12))(Image.fromarray(image)))
    np.testing.assert_array_equal(x[0].permute(1, 2, 0).numpy(), expected)
    assert y is None


def test_to_tensors_rejects_mixed_ground_truth_and_unknown_filters():
    a = _sample(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), "a")
    b = _sample(np.zeros((8, 8, 3), np.uint8), None, "b")
    with pytest.raises(ValueError, match="test/b"):
        to_tensors([a, b])
    with pytest.raises(ValueError, match="bicubic"):
        to_tensors([a], image_resize="bicubic")
    x, y = to_tensors([], size=8)
    assert x.shape == (0, 3, 8, 8) and y is None


def test_to_tensors_on_synthetic_pets():
    x, y = to_tensors(SyntheticPets(n=4, size=(48, 80)), size=32)
    assert x.shape == (4, 3, 32, 32) and y.shape == (4, 32, 32)
    assert set(torch.unique(y).tolist()) == {0, 1, 2}


# --------------------------------------------------------------------------------------------
# the staged real copies


@pytest.mark.realdata
def test_staged_animals90():
    root = shared_datasets()
    if root is None or not (root / "animals90").is_dir():
        pytest.skip("staged Animals-90 not available")
    ds = Animals90(root=root)
    assert len(ds) == 60 and ds.known_classes == ["antelope"]
    assert all(i.startswith("antelope/") for i in ds.ids)
    s = ds[0]
    assert s.meta == {"class": "antelope"} and s.image.ndim == 3 and s.image.dtype == np.uint8


@pytest.mark.realdata
def test_staged_oxford_pet():
    root = shared_datasets()
    if root is None or not (root / "oxford_iiit_pet").is_dir():
        pytest.skip("staged Oxford-IIIT Pet not available")
    trainval, test = OxfordPet(root=root, split="trainval"), OxfordPet(root=root, split="test")
    train, val = OxfordPet(root=root, split="train"), OxfordPet(root=root, split="val")
    assert len(trainval) == 59 and len(test) == 41
    assert len(train) + len(val) == 59 and not set(train.ids) & set(val.ids)
    assert sorted(train.ids + val.ids) == sorted(trainval.ids)
    assert 0.1 <= len(val) / 59 <= 0.32  # about 20 %
    for s in (train[0], test[0]):
        (mask,) = s.segmentations
        assert mask.shape == s.image.shape[:2] and set(np.unique(mask)) == {0, 1, 2}
        assert s.meta["species"] in ("cat", "dog")
    x, y = to_tensors(val[:3], size=64, image_resize="nearest")
    assert x.shape == (3, 3, 64, 64) and set(torch.unique(y).tolist()) <= {0, 1, 2}
