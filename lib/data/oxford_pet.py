"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012) with its trimaps: JigsawGAN's fine-tuning data (Peña Alarcón
2024, "JigsawGAN: a novel approach to self-supervised image segmentation"; the authors' code,
kawaiiblitz/GAN_SelfSupervised @5a8e92f, reads it with torchvision's OxfordIIITPet). torchvision's layout::

    oxford_iiit_pet/oxford-iiit-pet/images/<id>.jpg          # or oxford-iiit-pet/... directly
    oxford_iiit_pet/oxford-iiit-pet/annotations/trimaps/<id>.png   # 1 pet, 2 background, 3 border
    oxford_iiit_pet/oxford-iiit-pet/annotations/{trainval,test}.txt

Each sample has one segmentation of three classes, **0 = pet, 1 = background, 2 = border**
(trimap value - 1, the order of the authors' code's TrimapClasses). Splits: ``trainval`` and
``test`` (the official lists), and ``train`` / ``val``: JigsawGAN's 80 / 20 split of trainval,
drawn once with a fixed seed and kept in ``oxford_pet_trainval_split.txt`` beside this module
(for every id of the full official trainval list, so a subset copy uses the same assignment).
``sample.meta`` holds the list file's species (cat / dog), breed and class id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .. import paths
from .base import DatasetError, DatasetNotFound, Sample, SampleList, read_image

#: the mask classes 0, 1, 2: trimap values 1, 2, 3 minus one (the authors' TrimapClasses)
CLASSES = ("pet", "background", "border")
SPECIES = {"1": "cat", "2": "dog"}
SPLIT_FILE = Path(__file__).with_name("oxford_pet_trainval_split.txt")
SPLITS = ("train", "val", "trainval", "test")
HINT = ("torchvision.datasets.OxfordIIITPet(root='<data root>/oxford_iiit_pet', target_types='segmentation', "
        "download=True) fetches it (or lib.data.oxford_pet.download(<data root>)); or get images.tar.gz "
        "and annotations.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/pets/ and unpack them into "
        "<data root>/oxford_iiit_pet/oxford-iiit-pet/")


def _find_base(root: Path) -> Path:
    for base in (root / "oxford_iiit_pet" / "oxford-iiit-pet", root / "oxford-iiit-pet"):
        if (base / "annotations").is_dir() and (base / "images").is_dir():
            return base
    raise DatasetNotFound(f"Oxford-IIIT Pet not found: {root / 'oxford_iiit_pet' / 'oxford-iiit-pet'}\n  {HINT}")


def read_rows(path: Path) -> list[list[str]]:
    """The rows of an official list file (``<id> <class id> <species> <breed id>``), split on
    white space; '#' lines and blank lines skipped, CRLF tolerated."""
    if not path.is_file():
        raise DatasetNotFound(f"list file not found: {path}\n  {HINT}")
    return [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def read_list(path: Path) -> list[str]:
    """The ids (first column) of an official list file."""
    return [row[0] for row in read_rows(path)]


def row_meta(row: Sequence[str]) -> dict:
    """``{"species", "breed", "class_id"}`` of a list row (species 1 = cat, 2 = dog); the breed is the
    id without its trailing number (``"Abyssinian_100"`` -> ``"Abyssinian"``). Empty for a short row."""
    if len(row) < 3 or not row[1].isdigit():
        return {}
    return {"species": SPECIES.get(row[2], row[2]), "breed": row[0].rsplit("_", 1)[0], "class_id": int(row[1])}


def draw_trainval_split(ids: Sequence[str], seed: int = 0, val_fraction: float = 0.2) -> dict[str, str]:
    """``{id: "train" | "val"}``: a seeded permutation of ``ids``, its first round(0.8 n) train
    (the report splits trainval 80 / 20 into training and validation; the draw itself is ours, as the
    report gives no seed or list). The result is in the order of ``ids``."""
    if not 0 <= val_fraction <= 1:
        raise ValueError(f"val_fraction={val_fraction}: give a fraction between 0 and 1")
    ids = list(ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train = int(round((1 - val_fraction) * len(ids)))
    part = {ids[i]: "train" for i in order[:n_train]} | {ids[i]: "val" for i in order[n_train:]}
    return {i: part[i] for i in ids}


def split_file_text(official_trainval: Path, seed: int = 0) -> str:
    """The split file's text, drawn from the full official trainval list (how the shipped file was made)."""
    split = draw_trainval_split(read_list(official_trainval), seed)
    n_train = sum(p == "train" for p in split.values())
    header = (
        f"# JigsawGAN's 80/20 train/val split (the report's) of the official Oxford-IIIT Pet trainval list:\n"
        f"# {len(split)} ids, {n_train} train, {len(split) - n_train} val.\n"
        f"# Drawn by lib.data.oxford_pet.draw_trainval_split(ids, seed={seed}, val_fraction=0.2): the ids of\n"
        "# annotations/trainval.txt in its order, numpy.random.default_rng(seed).permutation(n), the first\n"
        "# round(0.8 n) of the permutation -> train, the rest -> val. Lines: <id> <train|val>, in the list's order.\n")
    return header + "".join(f"{i} {p}\n" for i, p in split.items())


def write_split_file(official_trainval: Path, path: Path = SPLIT_FILE, seed: int = 0) -> None:
    """Write :func:`split_file_text` to ``path`` (the repository's split file by default)."""
    Path(path).write_text(split_file_text(official_trainval, seed))


def read_split_file(path: Path = SPLIT_FILE) -> dict[str, str]:
    """``{id: "train" | "val"}`` from a split file; a malformed line is an error naming the file."""
    if not Path(path).is_file():
        raise DatasetError(f"split file not found: {path}; regenerate it with "
                           "lib.data.oxford_pet.write_split_file(<the official annotations/trainval.txt>)")
    out = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("train", "val"):
            raise DatasetError(f"{path}, line {number}: expected '<id> <train|val>', found {line!r}")
        out[parts[0]] = parts[1]
    return out


def read_trimap(path: Path) -> np.ndarray:
    """A trimap PNG as uint8 classes 0 (pet), 1 (background), 2 (border); other values are an error."""
    if not path.is_file():
        raise DatasetNotFound(f"trimap not found: {path}\n  {HINT}")
    try:
        with Image.open(path) as im:
            trimap = np.array(im)
    except Exception as exc:
        raise DatasetError(f"cannot read trimap {path}: {exc}. Re-download the dataset.") from exc
    values = np.unique(trimap)
    if trimap.ndim != 2 or not set(values.tolist()) <= {1, 2, 3}:
        raise DatasetError(f"{path}: a trimap holds the values 1, 2, 3 in one channel; found {values[:8].tolist()}")
    return (trimap - 1).astype(np.uint8)


class OxfordPet(SampleList):
    """Oxford-IIIT Pet images with their three-class trimaps.

    Args:
        root: data root; split: ``train``, ``val``, ``trainval`` or ``test``; limit: the first N.
    """

    def __init__(self, root=None, split: str = "train", limit: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: use one of {', '.join(SPLITS)}")
        self.base = _find_base(paths.data_root(root))
        self.split, self.name = split, f"oxford_pet/{split}"
        rows = read_rows(self.base / "annotations" / ("test.txt" if split == "test" else "trainval.txt"))
        self.meta = {row[0]: row_meta(row) for row in rows}
        listed = [row[0] for row in rows]
        if split in ("train", "val"):
            assignment = read_split_file()
            unknown = [i for i in listed if i not in assignment]
            if unknown:
                raise DatasetError(
                    f"{self.base / 'annotations' / 'trainval.txt'} lists {unknown[0]}"
                    + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                    + f", not in {SPLIT_FILE} (drawn from the official trainval list): use the official list "
                    "files, or ask for split='trainval'")
            listed = [i for i in listed if assignment[i] == split]
        self.ids = listed[:limit] if limit is not None and limit >= 0 else listed

    def _read(self, image_id: str) -> Sample:
        image = read_image(self.base / "images" / f"{image_id}.jpg")
        trimap_path = self.base / "annotations" / "trimaps" / f"{image_id}.png"
        mask = read_trimap(trimap_path)
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"{trimap_path}: trimap {mask.shape} does not match its image {image.shape[:2]}")
        return Sample(self.name, image_id, image, (mask,), meta=dict(self.meta.get(image_id, {})))


def download(root=None) -> Path:
    """Fetch Oxford-IIIT Pet (images and trimaps, about 800 MB) into ``<data root>/oxford_iiit_pet`` with
    torchvision (the layout :class:`OxfordPet` reads); returns that folder."""
    import torchvision

    target = paths.data_root(root) / "oxford_iiit_pet"
    torchvision.datasets.OxfordIIITPet(root=str(target), split="trainval", target_types="segmentation", download=True)
    return target
