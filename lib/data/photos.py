"""scikit-image's bundled photographs: real images that need no download, without ground truth.

They serve the qualitative figures (Fig. 2 of Kanezaki 2018 shows examples the same way).
"""

from __future__ import annotations

from typing import Sequence

from skimage import data as skdata

from .base import Sample, SampleList, as_rgb, require_ids

#: Colour photographs shipped inside the scikit-image wheel (no network needed).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


class Photos(SampleList):
    def __init__(self, ids: Sequence[str] | None = None, limit: int | None = None, root=None):
        self.name = "photos"
        self.ids = require_ids(ids, PHOTOS, "scikit-image photographs")
        if limit is not None and limit >= 0:
            self.ids = self.ids[:limit]

    def _read(self, image_id: str) -> Sample:
        return Sample(self.name, image_id, as_rgb(getattr(skdata, image_id)()))
