"""File input/output: atomic writes, verified reads and label-map files.

Every file the study writes goes through :func:`atomic_write`: the bytes land in a temporary
file in the same folder, which is then renamed over the target, so an interrupted run never
leaves half a file behind. A process killed mid-write (SIGKILL, a dead kernel) cannot delete its
temporary file; the name says which host and process made it, so :func:`remove_orphans` can
delete it later without touching a file another running process is still writing. The first
write of a process into a folder does that sweep, so wherever the study writes, the leftovers of
a killed run go with the next run that writes there.

Cached results are checked when read back (:func:`load_torch`, :func:`load_npz`,
:func:`read_json` with ``verify=True``): a file whose bytes no longer match their checksum, or
whose tensors hold NaN or infinity, raises :class:`DamagedFile`, which names it; the caller sets
it aside (:func:`set_aside`, kept for inspection) and computes the result again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path``; rename it to ``path`` when the block succeeds.
    The first write of this process into a folder removes the temporary files that killed
    processes left there (:func:`remove_orphans`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent not in _SWEPT:
        remove_orphans(path.parent)
        _SWEPT.add(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _owner() -> str:
    """Who writes a temporary file: host and process id (a host name may not hold a dot here)."""
    return f"{socket.gethostname().split('.')[0]}-{os.getpid()}"


#: folders this process has written into, so swept once already
_SWEPT: set[Path] = set()
_TMP = re.compile(r"^\..+\.(?P<host>[^.]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def remove_orphans(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write` that a killed process left in
    ``folder``: those made on this host by a process that no longer runs. Returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = _owner().rsplit("-", 1)[0]
    removed = []
    for path in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
        m = _TMP.match(path.name)
        if m and m["host"] == host and not _running(int(m["pid"])):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


#: the key under which a verified JSON file (``write_json(..., checksum=True)``) keeps its checksum
CHECKSUM = "sha256"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_json_default)


def write_json(path: str | os.PathLike, obj: Any, checksum: bool = False) -> None:
    """``obj`` as indented JSON; ``checksum=True`` (a dict) adds the SHA-256 of its content under
    :data:`CHECKSUM`, which :func:`read_json` checks."""
    if checksum:
        content = json.loads(_canonical(obj))  # as it will read back (tuples as lists, numpy as numbers)
        obj = {**content, CHECKSUM: hashlib.sha256(_canonical(content).encode()).hexdigest()}
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


class DamagedFile(OSError):
    """A cached file that cannot be trusted: unreadable, its bytes changed, or non-finite
    numbers where a result must be finite. The message names it."""


def read_json(path: str | os.PathLike, verify: bool = False) -> Any:
    """A JSON file; ``verify=True``: one written with ``checksum=True``, checked (DamagedFile)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise DamagedFile(f"{path}: not readable as JSON ({exc})") from None
    if verify:
        stored = obj.pop(CHECKSUM, None) if isinstance(obj, dict) else None
        if stored != hashlib.sha256(_canonical(obj).encode()).hexdigest():
            raise DamagedFile(f"{path}: its content does not match its checksum (changed after it was written)")
    return obj


def set_aside(path: str | os.PathLike, why: str) -> Path:
    """Rename a damaged file to ``<name>.damaged`` (``.damaged-2`` ... when taken) so that it is
    computed again, kept for inspection; warn, naming both. Returns the new path."""
    path = Path(path)
    target = path.with_name(f"{path.name}.damaged")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{n}")
    os.replace(path, target)
    warnings.warn(f"{why}; set aside as {target.name}, computing it again", stacklevel=3)
    return target


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save(obj)`` to ``path``, atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_write(path) as f:
        f.write(buffer.getvalue())


def load_torch(path: str | os.PathLike) -> Any:
    """A file of :func:`save_torch`, verified: every entry's CRC-32 (``torch.load`` does not check
    them, so a changed byte inside a tensor would load silently) and every floating tensor
    finite; DamagedFile otherwise."""
    import torch

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
        if bad is not None:
            raise DamagedFile(f"{path}: its entry {bad} fails its CRC-32 check (the bytes changed after writing)")
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except DamagedFile:
        raise
    except Exception as exc:  # truncated, not a zip, not a torch file
        raise DamagedFile(f"{path}: not readable as a checkpoint ({type(exc).__name__}: {exc})") from None
    for name, t in _tensors(obj):
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise DamagedFile(f"{path}: {name} holds NaN or infinite values")
    return obj


def _tensors(obj: Any, name: str = "") -> Iterator[tuple[str, Any]]:
    import torch

    if isinstance(obj, torch.Tensor):
        yield name or "a tensor", obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{name}/{k}" if name else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{name}[{i}]")


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (reading them checks each entry's CRC-32); DamagedFile
    when the file cannot be read whole."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DamagedFile(f"{path}: not readable ({type(exc).__name__}: {exc})") from None


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


class ImageFileError(ValueError):
    """A file that cannot be read as an image; the message names it."""


#: Pillow modes of one channel with more than 8 bits: 16-bit PNG / TIFF, 32-bit integer or float TIFF
HIGH_BIT_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` mapped linearly from ``low..high`` to 0..255 (clipped outside) as uint8."""
    x = (np.asarray(values, dtype=np.float64) - low) / max(high - low, 1e-9) * 255.0
    return np.clip(x, 0, 255).round().astype(np.uint8)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """An image file as ``(H, W, 3)`` uint8 RGB, and a note of what was done to it ("" for an
    8-bit file).

    Pillow converts 8-bit files (grey, palette, RGB, RGBA, CMYK). Its conversion would clip a
    high-bit-depth grey file (a 16-bit PNG, a 32-bit TIFF) at 255; instead the file's own range
    min..max is mapped linearly to 0..255, the networks' input range (as ``lib.data.lung_ct``
    does with ``window=None``), and repeated over three channels; the note gives the range.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            mode = im.mode
            raw = np.array(im) if mode in HIGH_BIT_DEPTH else np.array(im.convert("RGB"))
    except Exception as exc:  # not an image, truncated, an unknown format ...
        raise ImageFileError(f"{path} is not an image file that can be read ({exc})") from exc
    if mode not in HIGH_BIT_DEPTH:
        return raw, ""
    if not np.isfinite(raw).all():
        raise ImageFileError(f"{path}: a float image with NaN or infinite values; replace them first")
    low, high = float(raw.min()), float(raw.max())
    grey = to_uint8(raw, low, high)
    kind = {"I": "32-bit integer", "F": "32-bit float"}.get(mode, "16-bit")
    note = f"{path}: a {kind} grey image; its values {low:g}..{high:g} are mapped linearly to 0..255"
    return np.repeat(grey[..., None], 3, axis=2), note
