"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012) with its trimaps: JigsawGAN's fine-tuning data (Peña Alarcón
2024, "JigsawGAN: a novel approach to self-supervised image segmentation"; the authors' code,
kawaiiblitz/GAN_SelfSupervised @5a8e92f, reads it with torchvision's OxfordIIITPet). torchvision's layout::

    oxford_iiit_pet/oxford-iiit-pet/images/<id>.jpg          # or oxford-iiit-pet/... directly
    oxford_iiit_pet/oxford-iiit-pet/annotations/trimaps/<id>.png   # 1 pet, 2 background, 3 border
    oxford_iiit_pet/oxford-iiit-pet/annotations/{trainval,test}.txt

Each sample has one segmentation of three classes, **0 = pet, 1 = background, 2 = border**
(trimap value - 1, the order of the authors' code's TrimapClasses). Splits: ``trainval`` and
``test`` (the official lists), and ``train`` / ``val``: JigsawGAN's 80 / 20 split of trainval
exactly as the authors' ``finetune.py`` draws it (:func:`authors_split`: ``np.random.seed(42)``,
then a shuffle of the trainval indices, the first 80 % train), kept in
``oxford_pet_trainval_split.txt`` beside this module for every id of the full official trainval
list, so that a subset copy uses the same assignment. The file also keeps each training image's
place in the authors' draw of a training fraction (Fig. 3's data sizes: a second shuffle from the
same stream, the first ``int(n * fraction)`` kept; every run reseeds 42, so the fractions are
nested). ``sample.meta`` holds the list file's species (cat / dog), breed and class id, and for
``train`` / ``val`` that ``order`` with ``part_size``, the images of the full part.
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


#: the share of trainval the authors train on (``finetune.py``: ``int(len(pets_trainval) * 0.8)``)
TRAIN_SHARE = 0.8
#: the seed the authors' ``finetune.py`` gives numpy (and torch, and random) before drawing
AUTHORS_SEED = 42


def authors_split(ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """``{id: (part, order)}`` for the official trainval ``ids`` in their list's order, as the
    authors' ``finetune.train`` draws them: ``np.random.seed(42)``; the indices 0..n-1 shuffled;
    the first ``int(0.8 n)`` are ``train``, the rest ``val``. For a ``train`` id, ``order`` is its
    place in the authors' draw of a training fraction (the train indices shuffled again from the
    same stream: a fraction f keeps the ids with ``order < int(n_train * f)``); for a ``val`` id,
    its place in the shuffled val part. The legacy seeding (``RandomState``) is what
    ``np.random.seed`` sets, so the draw is the authors' on any numpy."""
    ids = list(ids)
    rng = np.random.RandomState(AUTHORS_SEED)
    indices = np.arange(len(ids))
    rng.shuffle(indices)
    cut = int(len(ids) * TRAIN_SHARE)
    train, val = indices[:cut], indices[cut:]
    fraction = np.arange(cut)
    rng.shuffle(fraction)  # finetune.py, only when percent != 1.0: the next draw of the same stream
    out = {ids[i]: ("val", k) for k, i in enumerate(val)}
    out.update({ids[train[j]]: ("train", k) for k, j in enumerate(fraction)})
    return {i: out[i] for i in ids}


def split_file_text(official_trainval: Path) -> str:
    """The split file's text, drawn from the full official trainval list (how the shipped file was made)."""
    split = authors_split(read_list(official_trainval))
    n_train = sum(p == "train" for p, _ in split.values())
    header = (
        "# JigsawGAN's 80/20 train/val split of the official Oxford-IIIT Pet trainval list, as the authors'\n"
        "# finetune.py draws it (kawaiiblitz/GAN_SelfSupervised @5a8e92f):\n"
        f"# {len(split)} ids, {n_train} train, {len(split) - n_train} val. Made by lib.data.oxford_pet.authors_split:\n"
        "# np.random.seed(42), the indices of annotations/trainval.txt (in its order) shuffled, the first\n"
        "# int(0.8 n) train, the rest val; then the train part shuffled again from the same stream (the\n"
        "# authors' draw of a training fraction f: the first int(n_train * f)). Lines: <id> <train|val> <order>,\n"
        "# in the list's order; order = a train id's place in the fraction draw, a val id's in the val part.\n")
    return header + "".join(f"{i} {p} {k}\n" for i, (p, k) in split.items())


def write_split_file(official_trainval: Path, path: Path = SPLIT_FILE) -> None:
    """Write :func:`split_file_text` to ``path`` (the repository's split file by default)."""
    Path(path).write_text(split_file_text(official_trainval))


def _split_rows(path: Path) -> dict[str, tuple[str, int]]:
    if not Path(path).is_file():
        raise DatasetError(f"split file not found: {path}; regenerate it with "
                           "lib.data.oxford_pet.write_split_file(<the official annotations/trainval.txt>)")
    out = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or parts[1] not in ("train", "val") or not parts[2].isdigit():
            raise DatasetError(f"{path}, line {number}: expected '<id> <train|val> <order>', found {line!r}")
        out[parts[0]] = (parts[1], int(parts[2]))
    return out


def read_split_file(path: Path = SPLIT_FILE) -> dict[str, str]:
    """``{id: "train" | "val"}`` from a split file; a malformed line is an error naming the file."""
    return {i: part for i, (part, _) in _split_rows(path).items()}


def read_orders(path: Path = SPLIT_FILE) -> dict[str, int]:
    """``{id: order}`` from a split file (see :func:`authors_split`)."""
    return {i: k for i, (_, k) in _split_rows(path).items()}


def train_size(path: Path = SPLIT_FILE) -> int:
    """Images in the full training part (2,944): the authors' fractions are shares of it."""
    return sum(part == "train" for part in read_split_file(path).values())


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
        self.orders: dict[str, int] = {}
        self.part_size = 0
        if split in ("train", "val"):
            assignment = read_split_file()
            self.orders = read_orders()
            self.part_size = sum(part == split for part in assignment.values())
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
        meta = dict(self.meta.get(image_id, {}))
        if image_id in self.orders:  # its place in the authors' draw, and the size of the full part
            meta.update(order=self.orders[image_id], part_size=self.part_size)
        return Sample(self.name, image_id, image, (mask,), meta=meta)


def download(root=None) -> Path:
    """Fetch Oxford-IIIT Pet (images and trimaps, about 800 MB) into ``<data root>/oxford_iiit_pet`` with
    torchvision (the layout :class:`OxfordPet` reads); returns that folder."""
    import torchvision

    target = paths.data_root(root) / "oxford_iiit_pet"
    torchvision.datasets.OxfordIIITPet(root=str(target), split="trainval", target_types="segmentation", download=True)
    return target


LISTS = ("trainval.txt", "test.txt")


def listed(root=None) -> dict[str, list[str]]:
    """``{list file: its ids}`` for ``annotations/trainval.txt`` and ``test.txt`` of the copy under
    ``root`` (DatasetNotFound when the copy or a list is not there)."""
    base = _find_base(paths.data_root(root))
    return {name: read_list(base / "annotations" / name) for name in LISTS}


def verify(root=None) -> list[str]:
    """What is wrong with the copy under ``root`` (empty list: nothing): every id of
    ``annotations/trainval.txt`` and ``test.txt`` needs an ``images/<id>.jpg`` and an
    ``annotations/trimaps/<id>.png`` that read, of one size. torchvision's download skips
    everything when the folders exist, so this is how a broken copy is found. The copy is judged
    by its own lists (a subset copy with shortened lists passes)."""
    try:
        base = _find_base(paths.data_root(root))
    except DatasetNotFound as exc:
        return [str(exc).splitlines()[0]]
    problems, seen = [], set()
    for name in LISTS:
        try:
            ids = read_list(base / "annotations" / name)
        except DatasetError as exc:
            problems.append(str(exc).splitlines()[0])
            continue
        for image_id in ids:
            if image_id in seen:
                continue
            seen.add(image_id)
            image = mask = None
            try:
                image = read_image(base / "images" / f"{image_id}.jpg")
            except DatasetError as exc:
                problems.append(str(exc).splitlines()[0])
            trimap = base / "annotations" / "trimaps" / f"{image_id}.png"
            try:
                mask = read_trimap(trimap)
            except DatasetError as exc:
                problems.append(str(exc).splitlines()[0])
            if image is not None and mask is not None and mask.shape != image.shape[:2]:
                problems.append(f"{trimap}: trimap {mask.shape} does not match its image {image.shape[:2]}")
    return problems
