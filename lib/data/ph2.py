"""PH2 dermoscopy (Mendonça et al., EMBC 2013) in the dataset's own layout.

Expected under the data root (either form)::

    ph2/PH2Dataset/PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp
    ph2/PH2Dataset/PH2 Dataset images/IMDxxx/IMDxxx_lesion/IMDxxx_lesion.bmp   # binary lesion mask
    ph2/PH2Dataset/PH2_dataset.xlsx                                             # optional: diagnoses
    ph2/PH2 Dataset images/...                                                  # the same without PH2Dataset/

Each sample has one segmentation: 1 = lesion, 0 = skin. The diagnosis (``common nevus``,
``atypical nevus`` or ``melanoma``), read from the spreadsheet when it is there, is in
``sample.meta["diagnosis"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .. import paths
from .base import DatasetError, DatasetNotFound, Sample, SampleList, read_image, require_ids

IMAGES_DIR = "PH2 Dataset images"
DIAGNOSES = ("common nevus", "atypical nevus", "melanoma")
HINT = ("PH2 is distributed by the ADDI project (Universidade do Porto) on request; place its "
        "'PH2Dataset' folder under <data root>/ph2/")


def _find_base(root: Path) -> Path:
    for base in (root / "ph2" / "PH2Dataset", root / "ph2"):
        if (base / IMAGES_DIR).is_dir():
            return base
    raise DatasetNotFound(f"PH2 not found: {root / 'ph2' / 'PH2Dataset' / IMAGES_DIR}\n  {HINT}")


def read_mask(path: Path) -> np.ndarray:
    """A binary mask file (1-bit, grey or RGB) as a uint8 array of 0 and 1."""
    if not path.is_file():
        raise DatasetNotFound(f"mask not found: {path}")
    try:
        with Image.open(path) as im:
            a = np.array(im.convert("L"))
    except Exception as exc:
        raise DatasetError(f"cannot read mask {path}: {exc}") from exc
    return (a > 0).astype(np.uint8)


def read_diagnoses(xlsx: Path) -> dict[str, str]:
    """``{image id: diagnosis}`` from PH2_dataset.xlsx (the 'Clinical Diagnosis' columns)."""
    import pandas as pd

    try:
        table = pd.read_excel(xlsx, header=None)
    except Exception as exc:
        raise DatasetError(f"cannot read {xlsx}: {exc}") from exc
    header = next((i for i, v in enumerate(table[0]) if str(v).strip() == "Image Name"), None)
    if header is None:
        raise DatasetError(f"{xlsx}: no 'Image Name' header row")
    names = [str(v).strip().lower() for v in table.iloc[header]]
    columns = {d: names.index(d) for d in DIAGNOSES if d in names}
    if len(columns) != 3:
        raise DatasetError(f"{xlsx}: expected the columns {', '.join(DIAGNOSES)}")
    out = {}
    for _, row in table.iloc[header + 1 :].iterrows():
        image_id = str(row[0]).strip()
        if image_id.startswith("IMD"):
            marked = [d for d, c in columns.items() if str(row[c]).strip().upper() == "X"]
            if len(marked) == 1:
                out[image_id] = marked[0]
    return out


class PH2(SampleList):
    """PH2 images with their lesion masks (one annotator).

    Args:
        root: data root; ids / limit: a subset (ids in numeric order by default).
    """

    def __init__(self, root=None, ids: Sequence[str] | None = None, limit: int | None = None):
        self.root = paths.data_root(root)
        self.base = _find_base(self.root)
        self.name = "ph2"
        known = sorted(p.name for p in (self.base / IMAGES_DIR).iterdir() if p.is_dir() and p.name.startswith("IMD"))
        if not known:
            raise DatasetNotFound(f"no IMDxxx folder in {self.base / IMAGES_DIR}\n  {HINT}")
        self.ids = require_ids(ids, known, str(self.base / IMAGES_DIR))
        if limit is not None and limit >= 0:
            self.ids = self.ids[:limit]
        xlsx = self.base / "PH2_dataset.xlsx"
        self.diagnoses = read_diagnoses(xlsx) if xlsx.is_file() else {}

    def _read(self, image_id: str) -> Sample:
        folder = self.base / IMAGES_DIR / image_id
        image = read_image(folder / f"{image_id}_Dermoscopic_Image" / f"{image_id}.bmp")
        mask = read_mask(folder / f"{image_id}_lesion" / f"{image_id}_lesion.bmp")
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"{folder}: lesion mask {mask.shape} does not match the image {image.shape[:2]}")
        meta = {"diagnosis": self.diagnoses[image_id]} if image_id in self.diagnoses else {}
        return Sample(self.name, image_id, image, (mask,), meta=meta)
