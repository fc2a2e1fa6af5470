"""What every dataset returns, and the errors a loader raises."""

from __future__ import annotations

import hashlib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import files


class DatasetError(RuntimeError):
    """A dataset file is missing, unreadable or inconsistent; the message names it."""


class DatasetNotFound(DatasetError):
    """A dataset is not where the data root says; the message names the path and the fix."""


@dataclass(frozen=True)
class Sample:
    """One image and all of its human segmentations.

    Attributes:
        dataset: the dataset's name and subset, e.g. ``"bsds500/test"``.
        id: the image's id within that dataset, e.g. ``"100007"``.
        image: ``(H, W, 3)`` uint8 RGB.
        segmentations: one ``(H, W)`` integer label map per annotator (empty when the dataset
            has no ground truth).
        boundaries: one ``(H, W)`` bool boundary map per annotator, when the dataset has them.
        meta: anything else the dataset says about the image (e.g. PH2's diagnosis).
    """

    dataset: str
    id: str
    image: np.ndarray
    segmentations: tuple[np.ndarray, ...] = ()
    boundaries: tuple[np.ndarray, ...] = field(default=(), repr=False)
    meta: dict = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        """``dataset/id``: unique across datasets, used as a file name in result caches."""
        return f"{self.dataset}/{self.id}"

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]


class SampleList(Sequence[Sample]):
    """A lazily read, indexable list of samples; subclasses implement ``ids`` and ``_read``."""

    name: str = "dataset"
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._read(i) for i in self.ids[index]]
        return self._read(self.ids[index])

    def _read(self, image_id: str) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} images)"


def read_image(path) -> np.ndarray:
    """A dataset's image file as ``(H, W, 3)`` uint8 RGB; a clear error names the file if it
    is missing or broken (a user's own files go through :func:`lib.files.read_image`)."""
    if not path.is_file():
        raise DatasetNotFound(f"image not found: {path}")
    try:
        return files.read_image(path)[0]
    except files.ImageFileError as exc:
        raise DatasetError(f"{exc}. Re-download the dataset.") from exc


def resize_image(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink ``image`` so that its longer side is ``max_side`` (anti-aliased); never enlarge.

    Ground truth is never resized: predictions are brought back to the ground truth's size
    (nearest neighbour) before they are scored, so every metric is computed at full resolution.
    """
    from skimage.transform import resize  # here: importing it costs a second a command may not need

    if not max_side:
        return image
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = resize(image, size, order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def require_ids(requested: Sequence[str] | None, known: Sequence[str], where: str) -> list[str]:
    """Return ``requested`` (or all ``known``), failing with a clear message on unknown ids."""
    if requested is None:
        return list(known)
    requested = [str(i) for i in requested]
    missing = sorted(set(requested) - set(known))
    if missing:
        raise DatasetError(f"{where}: no image with id {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    return requested


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Grey -> RGB, drop alpha, keep uint8."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[..., :3]
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    return image.astype(np.uint8)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in 1 MB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_url(url: str, dest: Path, progress: bool, hint: str) -> None:
    """Download ``url`` into ``dest`` (a progress bar when ``progress``); a failure is a
    :class:`DatasetError` naming the address and ending with ``hint`` (what to do offline)."""
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=Path(dest).name, disable=not progress) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:
        raise DatasetError(f"cannot download {url}: {exc}\n  {hint}") from exc
