"""Oxford-IIIT Pet: ``verify`` checks that every id of the copy's list files has a readable image and
trimap (torchvision skips its download whenever the folders exist, so a broken copy stays broken)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lib.data import oxford_pet


def write_pets(root: Path, trainval, test=(), shape=(12, 16)) -> Path:
    """torchvision's layout: oxford_iiit_pet/oxford-iiit-pet/{images/<id>.jpg, annotations/trimaps/<id>.png,
    annotations/trainval.txt, test.txt}, the lists with the official columns and CRLF."""
    base = root / "oxford_iiit_pet" / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    trimap = np.full(shape, 2, np.uint8)
    trimap[2:-2, 2:-2] = 1
    for k, image_id in enumerate([*trainval, *test]):
        Image.fromarray(np.full((*shape, 3), 100 + k, np.uint8)).save(base / "images" / f"{image_id}.jpg")
        Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{image_id}.png")
    header = "#Image CLASS-ID SPECIES BREED ID\r\n"
    for name, ids in (("trainval.txt", trainval), ("test.txt", test)):
        rows = "".join(f"{i} 1 {1 if i[0].isupper() else 2} 1\r\n" for i in ids)
        (base / "annotations" / name).write_bytes((header + rows).encode())
    return base


def broken_pets(root: Path) -> Path:
    """Three trainval and one test image; one listed image and one listed trimap deleted."""
    base = write_pets(root, ["Abyssinian_1", "Abyssinian_2", "beagle_3"], test=["pug_4"])
    (base / "images" / "Abyssinian_2.jpg").unlink()
    (base / "annotations" / "trimaps" / "beagle_3.png").unlink()
    return base


def test_verify_names_every_problem(tmp_path):
    assert "not found" in oxford_pet.verify(tmp_path)[0]  # no copy at all
    base = write_pets(tmp_path, ["Abyssinian_1", "Abyssinian_2", "beagle_3"], test=["pug_4", "pug_5"])
    assert oxford_pet.verify(tmp_path) == []
    (base / "images" / "Abyssinian_2.jpg").unlink()
    (base / "annotations" / "trimaps" / "beagle_3.png").unlink()
    (base / "images" / "pug_4.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.full((12, 15), 2, np.uint8)).save(base / "annotations" / "trimaps" / "pug_5.png")
    problems = oxford_pet.verify(tmp_path)
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert str(base / "images" / "Abyssinian_2.jpg") in text
    assert str(base / "annotations" / "trimaps" / "beagle_3.png") in text
    assert str(base / "images" / "pug_4.jpg") in text and "pug_5.png" in text


def test_verify_names_a_missing_list_file(tmp_path):
    base = write_pets(tmp_path, ["Abyssinian_1"], test=["pug_4"])
    (base / "annotations" / "test.txt").unlink()
    problems = oxford_pet.verify(tmp_path)
    assert len(problems) == 1 and str(base / "annotations" / "test.txt") in problems[0]
