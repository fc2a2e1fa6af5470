"""File input/output: atomic writes and label-map files.

Every file the study writes goes through :func:`atomic_write`: the bytes land in a temporary
file in the same folder, which is then renamed over the target, so an interrupted run never
leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path``; rename it to ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """``np.savez_compressed``, atomically."""
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def save_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an image (uint8 RGB / grey, or uint16 grey) as PNG, atomically."""
    fmt = Path(path).suffix.lstrip(".").upper() or "PNG"
    with atomic_write(path, "wb") as f:
        Image.fromarray(array).save(f, format="JPEG" if fmt == "JPG" else fmt)


def save_label_map(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write an integer label map as a single-channel 16-bit PNG (labels must fit in 0..65535)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"{path}: a label map must be 2-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
        raise ValueError(f"{path}: labels must lie in 0..65535 to be stored as a 16-bit PNG")
    save_image(path, labels.astype(np.uint16))


class LabelMapError(ValueError):
    """A prediction file that cannot be read as a label map."""


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read a label map from ``.png`` (single channel, 8- or 16-bit) or ``.npy`` (2-D integers)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            labels = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as im:
                if im.mode not in ("L", "I;16", "I;16B", "I;16L", "I", "P", "1"):
                    raise LabelMapError(
                        f"{path}: PNG mode {im.mode!r} is not a single-channel label map; "
                        "save labels as an 8- or 16-bit grey PNG (or as .npy)"
                    )
                labels = np.array(im)
    except LabelMapError:
        raise
    except Exception as exc:  # unreadable, truncated, not an image ...
        raise LabelMapError(f"{path}: cannot read a label map ({exc})") from exc
    if labels.ndim != 2:
        raise LabelMapError(f"{path}: expected a 2-D label map, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise LabelMapError(f"{path}: expected integer labels, got dtype {labels.dtype}")
    return labels.astype(np.int64)
