"""Run-time choices shared by every method: device, seeds, batch size."""

from __future__ import annotations

import hashlib

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but torch sees no CUDA device; use 'cpu' or 'auto'")
    return dev


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts`` (e.g. ``(seed, image_id)``), identical across runs.

    Each image's model is initialised from its own generator seeded this way, so the result for
    one image does not depend on which other images share its batch or on their order.
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
