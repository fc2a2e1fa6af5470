"""Run-time choices shared by every method: device, seeds, batch size."""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; ``"cpu"``, ``"cuda"`` and ``"cuda:N"``
    are checked against what torch sees (a ValueError says what to use instead)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    expected = f"device={device!r}: expected 'auto', 'cpu' or 'cuda' (or 'cuda:N' for GPU N)"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(expected) from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(expected)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but torch sees no CUDA device; use 'cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: torch sees {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    return dev


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts`` (e.g. ``(seed, image_id)``), identical across runs.

    Each image's model is initialised from its own generator seeded this way, so an image's
    initial weights do not depend on which other images share its batch or on their order (its
    final labels can still differ by floating-point rounding between batch sizes: see lib/runs.py).
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(stable_seed(*parts))
    return g


def default_batch_size(device: torch.device) -> int:
    """Images optimised together. On CPU one at a time is fastest (the cores are already busy
    with one image's convolutions); on a GPU a batch of independent models fills the device."""
    return 1 if device.type == "cpu" else 16


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the system (glibc only).

    Every iteration allocates and frees activations of ~60 MB per layer for a BSDS image. glibc
    serves such blocks with mmap and unmaps them when freed, so every iteration pays for fresh,
    zero-filled pages: on a 2-core machine this made BatchNorm and ReLU ~4x slower than their
    memory traffic and the whole loop ~1.5x slower. ``mallopt`` (the C library's documented knob,
    the same effect as the MALLOC_MMAP_MAX_ / MALLOC_TRIM_THRESHOLD_ environment variables)
    turns that off: freed blocks are reused. It changes no arithmetic. Set SEGSTUDY_DEFAULT_MALLOC=1
    to skip it. Returns whether the allocator was tuned.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or os.environ.get("SEGSTUDY_DEFAULT_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return _ALLOCATOR_TUNED
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): leave the allocator alone
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1
    ok &= libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    ok &= libc.mallopt(M_TOP_PAD, 64 << 20) == 1
    _ALLOCATOR_TUNED = ok
    return ok
