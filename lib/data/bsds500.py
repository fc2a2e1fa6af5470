"""BSDS500 (Arbelaez et al., TPAMI 2011) in its official layout.

Expected under the data root::

    bsds500/images/{train,val,test}/<id>.jpg
    bsds500/groundTruth/{train,val,test}/<id>.mat   # cell 'groundTruth' (1, k): Segmentation, Boundaries

``python -m lib download bsds500`` fetches the official archive, checks its MD5, keeps only
``BSR/BSDS500/data/{images,groundTruth}`` and checks every train/test file against the SHA-256
manifest in ``bsds500_sha256.txt`` (the val split is not in the manifest; its files are only
checked to load).

A copy that lacks part of a split is refused when it is opened, naming what is missing, rather than
scored on what is left: a benchmark over a named split must cover all of it. Any ``<id>.mat``
whose ``<id>.jpg`` is gone (or the reverse) is named; and when the copy holds the official images
(ids of the manifest), every id of the split the caller asks for must be there: the whole split,
or its first ``limit`` ids in numeric order. Copies under other ids (the tests' tiny fakes) are
checked for matching pairs only.
"""

from __future__ import annotations

import functools
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.io

from .. import paths
from .base import (DatasetError, DatasetNotFound, Sample, SampleList, fetch_url, file_digest, read_image,
                   require_ids)

SPLITS = ("train", "val", "test")
ARCHIVE_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
#: MD5 of BSR_bsds500.tgz as recorded by a third-party loader (Marc Bermejo's BSDS500 class);
#: the per-file SHA-256 manifest below is the check this study relies on.
ARCHIVE_MD5 = "0b17383ff0b21fe43d2f28e624203169"
MANIFEST = Path(__file__).with_name("bsds500_sha256.txt")
DOWNLOAD_HINT = "python -m lib download bsds500 --data-root {root}"


def _missing(path: Path, root: Path, what: str) -> DatasetNotFound:
    return DatasetNotFound(
        f"BSDS500 {what} not found: {path}\n"
        f"  Expected the official layout under the data root {root}:\n"
        f"    bsds500/images/<split>/<id>.jpg and bsds500/groundTruth/<split>/<id>.mat\n"
        f"  Get it with:  {DOWNLOAD_HINT.format(root=root)}\n"
        f"  or point the study at an existing copy (--data-root DIR or SEGSTUDY_DATA_ROOT=DIR)."
    )


def _id_key(image_id: str):
    return (0, int(image_id), "") if image_id.isdigit() else (1, 0, image_id)


class BSDS500(SampleList):
    """One split of BSDS500 with every annotator's segmentation (and boundaries).

    Args:
        root: data root (see :func:`lib.paths.data_root`).
        split: ``"train"``, ``"val"`` or ``"test"``.
        ids: restrict to these image ids (in this order).
        limit: keep the first ``limit`` ids in numeric order (a reproducible subset).
    """

    def __init__(self, root=None, split: str = "test", ids: Sequence[str] | None = None, limit: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: BSDS500 has splits {', '.join(SPLITS)}")
        self.root = paths.data_root(root)
        self.split = split
        self.name = f"bsds500/{split}"
        base = self.root / "bsds500"
        self.image_dir = base / "images" / split
        self.gt_dir = base / "groundTruth" / split
        for d, what in ((self.image_dir, f"{split} images"), (self.gt_dir, f"{split} ground truth")):
            if not d.is_dir():
                raise _missing(d, self.root, what)
        known = sorted((p.stem for p in self.image_dir.glob("*.jpg")), key=_id_key)
        if not known:
            raise _missing(self.image_dir / "*.jpg", self.root, f"{split} images")
        annotated = {p.stem for p in self.gt_dir.glob("*.mat")}
        # what is asked for: the whole split (None), its first `limit` ids, or named ids (0 here:
        # require_ids below checks those)
        asked = 0 if ids is not None else None if limit is None or limit < 0 else limit
        self._require_official(set(known), annotated, asked)
        without_gt = [i for i in known if i not in annotated]
        if without_gt:
            first = self.gt_dir / f"{without_gt[0]}.mat"
            which = f" (first: {without_gt[0]})" if len(without_gt) > 1 else ""
            raise _missing(first, self.root, f"ground truth of {len(without_gt)} of the {len(known)} {split} images{which}")
        without_image = sorted(annotated - set(known), key=_id_key)
        if without_image:
            first = self.image_dir / f"{without_image[0]}.jpg"
            which = f" (first: {without_image[0]})" if len(without_image) > 1 else ""
            raise _missing(first, self.root, f"{split} image (.jpg) of {len(without_image)} of the "
                           f"{len(annotated)} {split} ground-truth files{which}")
        self.ids = require_ids(ids, known, str(self.image_dir))
        self.present = len(self.ids)  # before ``limit``: how many the copy holds (for captions)
        if limit is not None and limit >= 0:
            self.ids = self.ids[:limit]

    def _require_official(self, images: set[str], annotated: set[str], limit: int | None) -> None:
        """A copy of the official images must hold every id of the split that is asked for: all of
        them (``limit`` None) or the first ``limit`` in numeric order (0: none, ids named by the caller
        are checked by :func:`require_ids`). A DatasetNotFound names the missing files and the fix."""
        official = manifest_ids(self.split)
        if not official or not (images | annotated) & set(official):
            return  # the val split (not in the manifest), or a copy of other images
        wanted = official if limit is None else official[:limit]
        absent = [i for i in wanted if i not in images or i not in annotated]
        if not absent:
            return

        def gone(i: str) -> str:
            rels = [f"images/{self.split}/{i}.jpg"] if i not in images else []
            rels += [f"groundTruth/{self.split}/{i}.mat"] if i not in annotated else []
            return f"{i} ({', '.join(rels)})"

        files = [gone(i) for i in absent[:5]]
        more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
        if limit is None:
            part, why = f"its {len(official)} images", "a benchmark over the split must cover all of it"
        else:
            part = f"the first {limit} (by id) of its {len(official)} images"
            why = f"limit={limit} asks for them"
        raise DatasetNotFound(
            f"BSDS500 {self.split} under {self.root / 'bsds500'} is incomplete: {len(absent)} of {part} "
            f"{'is' if len(absent) == 1 else 'are'} missing ({why}): {', '.join(files)}{more}.\n"
            f"  Get the complete copy with:  {DOWNLOAD_HINT.format(root=self.root)}\n"
            f"  or find what else differs from the official files with:  "
            f"python -m lib verify bsds500 --data-root {self.root}")

    def _read(self, image_id: str) -> Sample:
        image = read_image(self.image_dir / f"{image_id}.jpg")
        segs, bounds = read_ground_truth(self.gt_dir / f"{image_id}.mat", image.shape[:2])
        return Sample(self.name, image_id, image, segs, bounds)


def read_ground_truth(path: Path, shape: tuple[int, int]) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Every annotator's ``Segmentation`` (uint16 labels) and ``Boundaries`` (bool) in a .mat file."""
    try:
        cell = scipy.io.loadmat(path)["groundTruth"]
        entries = [cell[0, i][0, 0] for i in range(cell.shape[1])]
        segs = tuple(np.asarray(e["Segmentation"]) for e in entries)
        bounds = tuple(np.asarray(e["Boundaries"]).astype(bool) for e in entries)
    except Exception as exc:
        raise DatasetError(f"cannot read BSDS500 ground truth {path}: {exc}. Re-download the dataset.") from exc
    if not segs:
        raise DatasetError(f"{path}: no human segmentation in 'groundTruth'")
    for s in segs:
        if s.shape != tuple(shape):
            raise DatasetError(f"{path}: segmentation of shape {s.shape} does not match its image {tuple(shape)}")
    return segs, bounds


# --------------------------------------------------------------------------------------------
# download and verification


def manifest() -> dict[str, str]:
    """``{relative path: sha256}`` for the 800 train/test files of the January 2013 release."""
    entries = {}
    for line in MANIFEST.read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            entries[rel.strip()] = digest
    return entries


@functools.lru_cache(maxsize=None)
def manifest_ids(split: str) -> list[str]:
    """The official ids of ``split`` in numeric order (empty for ``val``, which the manifest lacks)."""
    prefix = f"images/{split}/"
    ids = (rel[len(prefix):-len(".jpg")] for rel in manifest() if rel.startswith(prefix))
    return sorted(ids, key=_id_key)


def verify(root=None) -> list[str]:
    """Check every train/test file present under ``<root>/bsds500`` against the manifest.

    Returns the list of problems (missing or altered files); empty when all is well.
    """
    base = paths.data_root(root) / "bsds500"
    problems = []
    for rel, digest in manifest().items():
        path = base / rel
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif file_digest(path, "sha256") != digest:
            problems.append(f"checksum mismatch: {path}")
    return problems


def download(root=None, url: str = ARCHIVE_URL, progress: bool = True) -> Path:
    """Download the official archive into ``<root>/bsds500`` (atomically) and verify it."""
    root = paths.data_root(root)
    target = root / "bsds500"
    if target.exists() and not verify(root):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".bsds500-") as tmp:
        tmp = Path(tmp)
        archive = tmp / "BSR_bsds500.tgz"
        fetch_url(url, archive, progress, "Without internet, copy an existing BSDS500 into <data root>/bsds500 "
                  "(official layout) and check it with: python -m lib verify bsds500")
        md5 = file_digest(archive, "md5")
        if md5 != ARCHIVE_MD5:
            raise DatasetError(f"{url}: MD5 {md5} differs from the expected {ARCHIVE_MD5}; the download is broken or the archive changed")
        staged = tmp / "bsds500"
        prefix = "BSR/BSDS500/data/"
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = member.name
                if not (member.isfile() and name.startswith(prefix)) or name.endswith("Thumbs.db"):
                    continue
                rel = name[len(prefix):]
                if not rel.startswith(("images/", "groundTruth/")):
                    continue
                dest = staged / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
        problems = verify(tmp)
        if problems:
            raise DatasetError("the downloaded BSDS500 does not match the manifest:\n  " + "\n  ".join(problems[:10]))
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target
