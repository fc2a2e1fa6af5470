"""PASCAL VOC 2012 training set augmented with SBD (Hariharan et al., ICCV 2011): the 10,582
images SegGAN trains on for its Table I ("augmented by the extra annotations, resulting in 10582
training images"), read through torchvision's ``VOCSegmentation`` and ``SBDataset``. Under the
data root (what those classes download)::

    VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/train.txt}
    sbd/{img/<id>.jpg, cls/<id>.mat, train.txt, val.txt}     # SBD's benchmark_RELEASE/dataset

``train_aug`` = SBD train + SBD val + VOC 2012 train, less every image of the VOC 2012
segmentation val list (``voc2012_segmentation_val.txt``), each id once: 10,582 ids on the
official files. An image in VOC 2012 train takes VOC's own PNG (its 255 void border is not
counted: read as -1); the others take SBD's ``GTcls.Segmentation`` (classes 0..20, no void).
Evaluation (Table I) is the 1,449 val images: ``voc2012`` with ``subset=None,
ground_truth="class"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import paths
from .base import DatasetError, DatasetNotFound, Sample, SampleList
from .voc2012 import VAL_LIST, VOID

#: the 21 classes of PASCAL VOC, in label order (0 = background)
CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
HINT = ("python -m lib download voc2012_aug --data-root <data root> fetches both (torchvision, MD5 checked; "
        "about 2 GB + 1.4 GB)")


class VOC2012Aug(SampleList):
    """The 10,582-image ``train_aug`` set (see the module docstring); ``limit``: the first N by id."""

    def __init__(self, root=None, limit: int | None = None):
        from torchvision.datasets import SBDataset, VOCSegmentation

        root = paths.data_root(root)
        self.name = "voc2012_aug/train"
        voc_dir, sbd_dir = root / "VOCdevkit" / "VOC2012", root / "sbd"
        for d, what in ((voc_dir, "PASCAL VOC 2012"), (sbd_dir / "cls", "SBD")):
            if not d.is_dir():
                raise DatasetNotFound(f"{what} not found: {d}\n  {HINT}")
        try:
            voc = VOCSegmentation(str(root), year="2012", image_set="train")
            sbd = [SBDataset(str(sbd_dir), image_set=s, mode="segmentation") for s in ("train", "val")]
        except (OSError, RuntimeError, ValueError) as exc:
            raise DatasetNotFound(f"cannot open VOC 2012 train or SBD under {root}: {exc}\n  {HINT}") from exc
        val = set(VAL_LIST.read_text().split())
        self._items: dict[str, tuple[object, int]] = {}
        for ds in sbd:
            for k, path in enumerate(ds.images):
                if Path(path).stem:  # a blank line of a list file names no image
                    self._items.setdefault(Path(path).stem, (ds, k))
        for k, path in enumerate(voc.images):  # VOC's own annotation wins where both have one
            if Path(path).stem:
                self._items[Path(path).stem] = (voc, k)
        ids = sorted(i for i in self._items if i not in val)
        self.ids = ids[:limit] if limit is not None and limit >= 0 else ids

    def _read(self, image_id: str) -> Sample:
        ds, k = self._items[image_id]
        try:
            image, target = ds[k]
        except FileNotFoundError as exc:
            raise DatasetNotFound(f"{exc.filename}: not found\n  {HINT}") from exc
        except Exception as exc:  # a broken .mat or image: name it
            raise DatasetError(f"cannot read {image_id} of {type(ds).__name__} ({ds.images[k]}): {exc}") from exc
        image = np.asarray(image.convert("RGB"), dtype=np.uint8)
        labels = np.asarray(target).astype(np.int32)
        if labels.shape != image.shape[:2]:
            raise DatasetError(f"{image_id}: labels {labels.shape} do not match the image {image.shape[:2]}")
        labels[labels == VOID] = -1
        if labels.max() >= len(CLASSES):
            raise DatasetError(f"{image_id}: label {labels.max()} outside 0..20")
        return Sample(self.name, image_id, image, (labels,), meta={"source": type(ds).__name__})


def download(root=None) -> Path:
    """VOC 2012 (train and val) and SBD with torchvision (each archive's MD5 checked) into the data root."""
    from torchvision.datasets import SBDataset, VOCSegmentation

    root = paths.data_root(root)
    (root / "sbd").mkdir(parents=True, exist_ok=True)
    try:
        VOCSegmentation(str(root), year="2012", image_set="trainval", download=True)
        if not (root / "sbd" / "cls").is_dir():
            SBDataset(str(root / "sbd"), image_set="train", mode="segmentation", download=True)
    except Exception as exc:
        raise DatasetError(f"cannot download VOC 2012 / SBD into {root}: {exc}") from exc
    return root / "sbd"
