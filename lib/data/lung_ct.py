"""Kaggle "Finding and Measuring Lungs in CT Data" (K. Mader), the 2D part.

Expected under the data root::

    lung_ct/2d_images/<id>.tif    # 512 x 512 CT slices, 16-bit signed (Hounsfield-like units)
    lung_ct/2d_masks/<id>.tif     # lung masks, 0 / 255

The networks take 8-bit RGB, so each slice is *windowed*: values in [level - width/2,
level + width/2] are mapped linearly to 0..255 and clipped outside, then repeated over three
channels. The default is the standard lung window (level -600, width 1500: -1350 .. 150 HU),
which keeps air, lung parenchyma and soft tissue apart; ``window=None`` maps each slice's own
min..max instead.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from .. import paths
from ..files import to_uint8
from .base import DatasetError, DatasetNotFound, Sample, SampleList, require_ids
from .ph2 import read_mask

LUNG_WINDOW = (-600.0, 1500.0)  # (level, width)


def window(slice_hu: np.ndarray, level_width: tuple[float, float] | None = LUNG_WINDOW) -> np.ndarray:
    """A CT slice as uint8 RGB through an intensity window (see the module docstring)."""
    if level_width is None:
        lo, hi = float(slice_hu.min()), float(slice_hu.max())
    else:
        level, width = level_width
        lo, hi = level - width / 2, level + width / 2
    grey = to_uint8(slice_hu, lo, hi)
    return np.repeat(grey[..., None], 3, axis=2)


class LungCT(SampleList):
    def __init__(self, root=None, ids: Sequence[str] | None = None, limit: int | None = None,
                 window_level_width: tuple[float, float] | None = LUNG_WINDOW):
        self.root = paths.data_root(root)
        self.base = self.root / "lung_ct"
        self.name = "lung_ct"
        self.window = tuple(window_level_width) if window_level_width is not None else None
        for d in ("2d_images", "2d_masks"):
            if not (self.base / d).is_dir():
                raise DatasetNotFound(
                    f"lung CT not found: {self.base / d}\n  Expected <data root>/lung_ct/2d_images/*.tif and 2d_masks/*.tif "
                    "(Kaggle 'Finding and Measuring Lungs in CT Data', kmader/finding-lungs-in-ct-data)"
                )
        known = sorted(p.stem for p in (self.base / "2d_images").glob("*.tif"))
        if not known:
            raise DatasetNotFound(f"no .tif slice in {self.base / '2d_images'}")
        self.ids = require_ids(ids, known, str(self.base / "2d_images"))
        if limit is not None and limit >= 0:
            self.ids = self.ids[:limit]

    def _read(self, image_id: str) -> Sample:
        path = self.base / "2d_images" / f"{image_id}.tif"
        try:
            with Image.open(path) as im:
                raw = np.array(im)
        except FileNotFoundError:
            raise DatasetNotFound(f"CT slice not found: {path}") from None
        except Exception as exc:
            raise DatasetError(f"cannot read CT slice {path}: {exc}") from exc
        if raw.ndim != 2:
            raise DatasetError(f"{path}: expected one 2-D slice, got shape {raw.shape}")
        mask = read_mask(self.base / "2d_masks" / f"{image_id}.tif")
        if mask.shape != raw.shape:
            raise DatasetError(f"{path}: mask {mask.shape} does not match the slice {raw.shape}")
        return Sample(self.name, image_id, window(raw, self.window), (mask,), meta={"hu_range": (int(raw.min()), int(raw.max()))})
