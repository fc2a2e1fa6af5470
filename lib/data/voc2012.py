"""PASCAL VOC 2012 segmentation (Everingham et al.) in its official layout.

Expected under the data root (what ``torchvision.datasets.VOCSegmentation(root, year="2012")``
downloads)::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png     # palette PNG: class 0..20, 255 = void
    VOCdevkit/VOC2012/SegmentationObject/<id>.png    # palette PNG: instance 1..n, 0 = background, 255 = void
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

DynamicSeg evaluates on "150 random images" of the segmentation set, "each segment an individual
entity", without saying which images, which PNGs or what happened to the void border. Here:

- ``subset="val150"`` (default): 150 ids drawn with :func:`draw_subset` (seed 2012) from the
  1,449-image segmentation val list, saved in ``voc2012_val150.txt`` so everyone scores the same
  images; the val list itself is ``voc2012_segmentation_val.txt`` (from the official
  ImageSets/Segmentation/val.txt). ``subset=None`` uses the split's list on disk.
- ``ground_truth="object"`` (default; each instance and the background are segments) or
  ``"class"`` (each class present is one segment).
- ``void="drop"`` (default; the 255 border pixels do not count, see lib/evaluation.py) or
  ``"keep"`` (the void border is a segment of its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .. import paths
from .base import DatasetError, DatasetNotFound, Sample, SampleList, read_image, require_ids

HERE = Path(__file__).parent
VAL_LIST = HERE / "voc2012_segmentation_val.txt"
VAL150 = HERE / "voc2012_val150.txt"
SUBSET_SEED = 2012
VOID = 255


def draw_subset(ids: Sequence[str], n: int = 150, seed: int = SUBSET_SEED) -> list[str]:
    """``n`` ids drawn without replacement with numpy's PCG64 seeded ``seed``, returned sorted."""
    ids = sorted(ids)
    if n > len(ids):
        raise ValueError(f"cannot draw {n} of {len(ids)} ids")
    picked = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
    return sorted(ids[i] for i in picked)


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class VOC2012(SampleList):
    """PASCAL VOC 2012 segmentation images with one annotator's segments (see module docstring)."""

    def __init__(
        self,
        root=None,
        split: str = "val",
        subset: str | None = "val150",
        ground_truth: str = "object",
        void: str = "drop",
        ids: Sequence[str] | None = None,
        limit: int | None = None,
    ):
        if ground_truth not in ("object", "class"):
            raise ValueError(f"ground_truth={ground_truth!r}: use 'object' (SegmentationObject) or 'class' (SegmentationClass)")
        if void not in ("drop", "keep"):
            raise ValueError(f"void={void!r}: use 'drop' (void pixels do not count) or 'keep' (void is a segment)")
        if subset not in (None, "val150"):
            raise ValueError(f"subset={subset!r}: use 'val150' or None (the whole split)")
        self.root = paths.data_root(root)
        self.base = self.root / "VOCdevkit" / "VOC2012"
        self.ground_truth, self.void = ground_truth, void
        self.gt_dir = self.base / ("SegmentationObject" if ground_truth == "object" else "SegmentationClass")
        self.name = f"voc2012/{subset or split}"
        for d in (self.base / "JPEGImages", self.gt_dir):
            if not d.is_dir():
                raise DatasetNotFound(
                    f"PASCAL VOC 2012 not found: {d}\n"
                    f"  Expected the official layout under the data root {self.root}: VOCdevkit/VOC2012/...\n"
                    f"  Get it with:  python -m lib download voc2012 --data-root {self.root}  (needs internet)"
                )
        if subset == "val150":
            if split != "val":
                raise ValueError("subset='val150' is drawn from the val split")
            known = _read_list(VAL150)
        else:
            listing = self.base / "ImageSets" / "Segmentation" / f"{split}.txt"
            if not listing.is_file():
                raise DatasetNotFound(f"PASCAL VOC 2012 split list not found: {listing}")
            known = _read_list(listing)
        self.ids = require_ids(ids, known, str(self.base))
        if limit is not None and limit >= 0:
            self.ids = self.ids[:limit]

    def _read(self, image_id: str) -> Sample:
        image = read_image(self.base / "JPEGImages" / f"{image_id}.jpg")
        path = self.gt_dir / f"{image_id}.png"
        if not path.is_file():
            raise DatasetNotFound(f"PASCAL VOC 2012 ground truth not found: {path}")
        try:
            with Image.open(path) as im:
                if im.mode not in ("P", "L"):
                    raise DatasetError(f"{path}: expected a palette (index) PNG, got mode {im.mode}")
                labels = np.array(im).astype(np.int32)
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from exc
        if labels.shape != image.shape[:2]:
            raise DatasetError(f"{path}: ground truth {labels.shape} does not match its image {image.shape[:2]}")
        if self.void == "drop":
            labels[labels == VOID] = -1
        return Sample(self.name, image_id, image, (labels,))


def download(root=None) -> Path:
    """Download VOC 2012 with torchvision (which checks the archive's MD5) into the data root."""
    from torchvision.datasets import VOCSegmentation

    root = paths.data_root(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        VOCSegmentation(str(root), year="2012", image_set="val", download=True)
    except Exception as exc:
        raise DatasetError(f"cannot download PASCAL VOC 2012 into {root}: {exc}") from exc
    return root / "VOCdevkit" / "VOC2012"
