"""Stanford Background (Gould, Fulton, Koller, ICCV 2009): SegGAN's Table II data (Zhang et al.,
"SegGAN: semantic segmentation with generative adversarial network", BigMM 2018). The official
archive ``iccv09Data.tar.gz`` unpacks to::

    stanford_background/iccv09Data/images/<id>.jpg          # 715 outdoor scenes, about 320 x 240
    stanford_background/iccv09Data/labels/<id>.regions.txt  # one integer per pixel, rows = image rows

The region labels are eight semantic classes, 0 sky, 1 tree, 2 road, 3 grass, 4 water,
5 building, 6 mountain, 7 foreground object; a negative number is "unknown", read here as -1,
which no metric counts. SegGAN draws "600 for training and 115 images for testing" at random
without saying which: the study's draw (seeded, see :func:`draw_split`) is kept in
``stanford_background_split.txt`` beside this module, so every run scores the same 115 images.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import paths
from .base import DatasetError, DatasetNotFound, Sample, SampleList, fetch_url, file_digest, read_image

CLASSES = ("sky", "tree", "road", "grass", "water", "building", "mountain", "foreground")
SPLITS = ("train", "test", "all")
SPLIT_FILE = Path(__file__).with_name("stanford_background_split.txt")
ARCHIVE_URL = "http://dags.stanford.edu/data/iccv09Data.tar.gz"
#: SHA-256 of iccv09Data.tar.gz: the dataset's authors publish none, and no machine of this study
#: reaches their server; ``download`` prints the digest of what it fetched, so that a user can pin
#: it here. Until then the download is checked by its content (every file of the split file present
#: and readable), see :func:`verify`.
ARCHIVE_SHA256: str | None = None
HINT = (f"python -m lib download stanford_background --data-root <data root> fetches it ({ARCHIVE_URL}, 14 MB), "
        "or unpack iccv09Data.tar.gz into <data root>/stanford_background/")


def _find_base(root: Path) -> Path:
    for base in (root / "stanford_background" / "iccv09Data", root / "iccv09Data"):
        if (base / "images").is_dir() and (base / "labels").is_dir():
            return base
    raise DatasetNotFound(f"Stanford Background not found: {root / 'stanford_background' / 'iccv09Data'}\n  {HINT}")


def draw_split(ids: Sequence[str], seed: int = 0, n_test: int = 115) -> dict[str, str]:
    """``{id: "train" | "test"}``: the ids sorted, a permutation by numpy's PCG64 seeded ``seed``,
    its last ``n_test`` -> test (SegGAN: 600 train / 115 test of the 715 images)."""
    ids = sorted(ids)
    if not 0 <= n_test <= len(ids):
        raise ValueError(f"n_test={n_test}: between 0 and the {len(ids)} ids")
    order = np.random.default_rng(seed).permutation(len(ids))
    test = {ids[i] for i in order[len(ids) - n_test:]}
    return {i: "test" if i in test else "train" for i in ids}


def split_file_text(ids: Sequence[str], seed: int = 0) -> str:
    """The split file's text (how the shipped file was made, from the 715 image names)."""
    split = draw_split(ids, seed)
    n_test = sum(p == "test" for p in split.values())
    header = (f"# SegGAN's random 600 / 115 split of Stanford Background (iccv09Data/images, {len(split)} ids):\n"
              f"# {len(split) - n_test} train, {n_test} test. Drawn by lib.data.stanford_background.draw_split(ids, "
              f"seed={seed}):\n# the ids sorted, numpy.random.default_rng(seed).permutation(n), its last 115 -> test. "
              "Lines: <id> <train|test>.\n")
    return header + "".join(f"{i} {p}\n" for i, p in split.items())


def read_split_file(path: Path | None = None) -> dict[str, str]:
    """``{id: "train" | "test"}`` from a split file (default: the repository's); a malformed line
    is an error naming the file."""
    path = SPLIT_FILE if path is None else path
    if not Path(path).is_file():
        raise DatasetError(f"split file not found: {path}; rebuild it with lib.data.stanford_background.split_file_text")
    out = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("train", "test"):
            raise DatasetError(f"{path}, line {number}: expected '<id> <train|test>', found {line!r}")
        out[parts[0]] = parts[1]
    return out


def read_regions(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A ``*.regions.txt`` file as an int32 label map: 0..7, and -1 for every negative ("unknown").
    A ragged file, a value above 7 or a map of another size than its image is an error naming it."""
    if not path.is_file():
        raise DatasetNotFound(f"region labels not found: {path}\n  {HINT}")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not rows or len({len(r) for r in rows}) != 1:
        raise DatasetError(f"{path}: expected one row of integers per image row, all of one length")
    try:
        labels = np.array(rows, dtype=np.int32)
    except ValueError as exc:
        raise DatasetError(f"{path}: not a matrix of integers ({exc})") from exc
    if labels.max() >= len(CLASSES):
        raise DatasetError(f"{path}: label {labels.max()} outside 0..{len(CLASSES) - 1} (and negatives for unknown)")
    if shape is not None and labels.shape != tuple(shape):
        raise DatasetError(f"{path}: labels {labels.shape} do not match their image {tuple(shape)}")
    return np.where(labels < 0, -1, labels)


class StanfordBackground(SampleList):
    """Stanford Background images with their eight-class region labels.

    Args:
        root: data root; split: ``train`` (600), ``test`` (115) or ``all``; limit: the first N by id.
    """

    def __init__(self, root=None, split: str = "train", limit: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: use one of {', '.join(SPLITS)}")
        self.base = _find_base(paths.data_root(root))
        self.split, self.name = split, f"stanford_background/{split}"
        on_disk = sorted(p.name[: -len(".jpg")] for p in (self.base / "images").glob("*.jpg"))
        assignment = read_split_file()
        unknown = [i for i in on_disk if i not in assignment]
        if unknown:
            raise DatasetError(f"{self.base / 'images'} holds {unknown[0]}.jpg" + (f" (and {len(unknown) - 1} more)"
                               if len(unknown) > 1 else "") + f", not in {SPLIT_FILE}: is it the official archive?")
        ids = on_disk if split == "all" else [i for i in on_disk if assignment[i] == split]
        self.ids = ids[:limit] if limit is not None and limit >= 0 else ids

    def _read(self, image_id: str) -> Sample:
        image = read_image(self.base / "images" / f"{image_id}.jpg")
        labels = read_regions(self.base / "labels" / f"{image_id}.regions.txt", image.shape[:2])
        return Sample(self.name, image_id, image, (labels,))


def verify(root=None) -> list[str]:
    """What is wrong with the copy under ``root``: every id of the split file must have its image
    and a region file of the image's size (empty list: the copy is complete)."""
    try:
        base = _find_base(paths.data_root(root))
    except DatasetNotFound as exc:
        return [str(exc).splitlines()[0]]
    problems = []
    for image_id in read_split_file():
        try:
            image = read_image(base / "images" / f"{image_id}.jpg")
            read_regions(base / "labels" / f"{image_id}.regions.txt", image.shape[:2])
        except DatasetError as exc:
            problems.append(str(exc).splitlines()[0])
    return problems


def check_sha256(sha256: str) -> str:
    """``sha256`` in lower case, or a DatasetError when it is not 64 hexadecimal digits (checked
    before a download starts, not after it)."""
    text = sha256.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        hexadecimal = re.fullmatch(r"[0-9a-fA-F]*", text) is not None
        what = f"{len(text)} characters" + ("" if hexadecimal else ", not all hexadecimal")
        raise DatasetError(f"--sha256 {sha256}: a SHA-256 digest is 64 hexadecimal digits (0-9, a-f), this "
                           f"is {what}; copy the whole digest (e.g. from `sha256sum iccv09Data.tar.gz`)")
    return text.lower()


def download(root=None, url: str = ARCHIVE_URL, sha256: str | None = ARCHIVE_SHA256, progress: bool = True) -> Path:
    """Fetch ``iccv09Data.tar.gz`` into ``<root>/stanford_background`` and check it: its SHA-256
    against ``sha256`` when one is given (always printed; its form is checked before the download,
    upper or lower case alike), then every file :func:`verify` reads. Unpacked in a temporary
    folder and moved into place only when all of it checks out."""
    expected = None if sha256 is None else check_sha256(sha256)
    root = paths.data_root(root)
    target = root / "stanford_background"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".stanford_background-") as tmp:
        tmp = Path(tmp)
        archive = tmp / "iccv09Data.tar.gz"
        fetch_url(url, archive, progress, "Without internet, unpack a copy of iccv09Data.tar.gz into "
                  "<data root>/stanford_background/ and check it with: python -m lib verify stanford_background")
        digest = file_digest(archive, "sha256")
        print(f"{archive.name}: SHA-256 {digest}")
        if expected is not None and digest != expected:
            raise DatasetError(f"{url}: SHA-256 {digest} differs from the expected {expected}; the download "
                               "is broken or the archive changed")
        staged = tmp / "stanford_background"
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith("iccv09Data/")]
            if not members:
                raise DatasetError(f"{url}: the archive holds no iccv09Data/ folder")
            tar.extractall(staged, members=members, filter="data")
        problems = verify(tmp)
        if problems:
            raise DatasetError(f"the downloaded Stanford Background is incomplete ({len(problems)} problem(s)):\n  "
                               + "\n  ".join(problems[:10]))
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target
