"""Seeded construction: a network's initial weights drawn from a generator of its own, so the same
seed gives the same weights on every run whatever else has drawn from the global random state."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def seeded_init(generator: torch.Generator | None) -> Iterator[None]:
    """Layers constructed in this block take their initial weights from a CPU random state seeded
    by one draw from ``generator``; the global random state is restored afterwards. ``None``: the
    global random state is used (and advanced), as in plain PyTorch."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    with torch.random.fork_rng(devices=[]):  # only the CPU state: the layers are built on the CPU
        torch.default_generator.manual_seed(seed)
        yield
