"""Animals-90 (Kaggle "Animal Image Dataset (90 Different Animals)", Sourav Banerjee): unlabelled
photos for the JigsawGAN pre-training (Peña Alarcón 2024, "JigsawGAN: a novel approach to
self-supervised image segmentation"; the authors' code, kawaiiblitz/GAN_SelfSupervised @5a8e92f,
pre-trains its GAN on these images).

Expected under the data root (the Kaggle archive's layout, either form)::

    animals90/animals/animals/<class>/<hash>.jpg
    animals90/animals/<class>/<hash>.jpg            # the same without the inner animals/

Sample ids are ``"<class>/<file stem>"``; there is no ground truth (``segmentations == ()``), and
the class is in ``sample.meta["class"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .. import paths
from .base import DatasetError, DatasetNotFound, Sample, SampleList, read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
HINT = ("download Kaggle's \"Animal Image Dataset (90 Different Animals)\" by Sourav Banerjee "
        "(https://www.kaggle.com/datasets/iamsouravbanerjee/animal-image-dataset-90-different-animals) "
        "and unzip it so that <data root>/animals90/animals/animals/<class>/ exists")


def find_base(root: Path) -> Path:
    """The folder whose sub-folders are the classes; DatasetNotFound names the expected path."""
    for base in (root / "animals90" / "animals" / "animals", root / "animals90" / "animals"):
        if base.is_dir() and any(p.is_dir() and p.name != "animals" for p in base.iterdir()):
            return base
    raise DatasetNotFound(f"Animals-90 not found: {root / 'animals90' / 'animals' / 'animals'}\n  {HINT}")


def class_images(folder: Path) -> list[Path]:
    """The image files of one class folder, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class Animals90(SampleList):
    """Animals-90 photos, no ground truth.

    Args:
        root: data root (see :func:`lib.paths.data_root`).
        classes: a subset of the class folders (all by default); an unknown one is an error.
        limit: the first ``limit`` ids (in sorted order); ``None`` or -1 for all.
    """

    def __init__(self, root=None, classes: Sequence[str] | None = None, limit: int | None = None):
        self.root = paths.data_root(root)
        self.base = find_base(self.root)
        self.name = "animals90"
        self.known_classes = sorted(p.name for p in self.base.iterdir() if p.is_dir())
        if classes is None:
            chosen = self.known_classes
        else:
            chosen = [str(c) for c in classes]
            unknown = sorted(set(chosen) - set(self.known_classes))
            if unknown:
                raise DatasetError(f"{self.base}: unknown class(es) {', '.join(unknown)}; "
                                   f"known: {', '.join(self.known_classes)}")
        self._files: dict[str, Path] = {}
        for cls in sorted(set(chosen)):
            for path in class_images(self.base / cls):
                self._files[f"{cls}/{path.stem}"] = path
        if not self._files:
            raise DatasetNotFound(f"no image in the class folders of {self.base}\n  {HINT}")
        self.ids = sorted(self._files)
        if limit is not None and limit >= 0:
            self.ids = self.ids[:limit]

    def _read(self, image_id: str) -> Sample:
        path = self._files.get(image_id)
        if path is None:
            raise DatasetError(f"{self.base}: no image with id {image_id}")
        cls = image_id.split("/", 1)[0]
        return Sample(self.name, image_id, read_image(path), (), meta={"class": cls})
