"""The memory layout of the per-image networks, chosen by measurement on the machine at hand.

The same convolution runs at very different speeds in PyTorch's default layout (NCHW) and in
channels-last (NHWC), and which is faster depends on the processor and the layer: on a 2-core AMD
EPYC (AVX2) oneDNN's 3x3 convolution was 1.6x slower channels-last; on a 2-core Intel Xeon
(AVX-512) it is up to 2x faster, yet there the whole one-image Kanezaki 2018 step is fastest in
NCHW and a batch of two fastest channels-last. No fixed rule holds, so :func:`choose` times one
forward and backward pass of a throwaway copy of the network on the real input in each
:class:`Layout` (convolutions and normalisations each in NCHW or channels-last) and keeps the
fastest. The choice is cached per machine (processor or GPU, threads, torch version), network
and input shape in ``$SEGSTUDY_CACHE_DIR/layouts.json`` (default ``~/.cache/segstudy``), and
recorded in every run record. The layout changes no arithmetic, only the order of floating-point
operations inside the kernels (like the batch size: see ``lib/runs.py``).

``SEGSTUDY_LAYOUT=nchw`` (or ``channels_last``, or ``conv=channels_last,norm=nchw``) skips the
probe and forces a layout.

:func:`fastest` is the same measurement for any choice between ways of doing the same work; S3-Net's
dilated depthwise convolutions use it too (``lib/models/s3net.py``: oneDNN's 7x7 dilation-3 kernel
ran 3x slower than the same sums over the image's 3 x 3 interleaved sub-grids on a 2-core AMD EPYC).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


@dataclass(frozen=True)
class Layout:
    """Where a network keeps its activations: ``conv`` for the convolutions, ``norm`` for the
    batch normalisations (``"nchw"`` or ``"channels_last"``)."""

    conv: str = "nchw"
    norm: str = "nchw"

    def __post_init__(self) -> None:
        for part in (self.conv, self.norm):
            if part not in FORMATS:
                raise ValueError(f"layout {part!r}: use {' or '.join(FORMATS)}")

    def to_conv(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` in the convolutions' layout (no copy when it already is)."""
        return t.contiguous(memory_format=FORMATS[self.conv])

    def to_norm(self, t: torch.Tensor) -> torch.Tensor:
        return t.contiguous(memory_format=FORMATS[self.norm])

    def __str__(self) -> str:
        return self.conv if self.conv == self.norm else f"conv={self.conv},norm={self.norm}"


CANDIDATES = tuple(Layout(conv, norm) for conv in FORMATS for norm in FORMATS)


def parse(text: str) -> Layout:
    """``"nchw"``, ``"channels_last"`` or ``"conv=<format>,norm=<format>"`` (as ``str(layout)``)."""
    if text in FORMATS:
        return Layout(text, text)
    try:
        parts = dict(item.split("=", 1) for item in text.split(","))
        return Layout(parts["conv"], parts["norm"])
    except (ValueError, KeyError):
        raise ValueError(f"layout {text!r}: use nchw, channels_last or conv=<format>,norm=<format>") from None


def machine(device: torch.device) -> str:
    """What a timing depends on besides the network: the processor or GPU, threads, torch."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{_cpu_name()} x{os.cpu_count()} threads={torch.get_num_threads()}"
    return f"{where} | torch {torch.__version__}"


@functools.lru_cache(maxsize=None)
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cache_file() -> Path:
    return Path(os.environ.get("SEGSTUDY_CACHE_DIR") or Path.home() / ".cache" / "segstudy") / "layouts.json"


_CHOSEN: dict[str, str] = {}  # this process's choices, also when the cache file cannot be written
_NAMES: dict[str, str] = {}  # cache key -> the name given to fastest()


def chosen() -> dict[str, str]:
    """What this process chose: ``{name: choice}``, e.g. ``{"Kanezaki2018Net 103400 parameters |
    input (1, 3, 321, 481)": "nchw"}`` (printed by the benchmark)."""
    return {_NAMES.get(key, key): value for key, value in _CHOSEN.items()}


def choose(model: torch.nn.Module, x: torch.Tensor) -> Layout:
    """The fastest :class:`Layout` for one forward and backward pass of ``model`` on ``x``
    (measured once per machine, network and shape; see the module docstring)."""
    forced = os.environ.get("SEGSTUDY_LAYOUT")
    if forced:
        return parse(forced)
    name = f"{type(model).__name__} {sum(p.numel() for p in model.parameters())} parameters | input {tuple(x.shape)}"
    return parse(fastest(name, {str(layout): _probe_step(model, x, layout) for layout in CANDIDATES}, x.device))


def fastest(name: str, steps: dict[str, Callable[[], object]], device: torch.device, rounds: int = 3) -> str:
    """The key of the fastest of ``steps`` (calls doing the same work in different ways), read
    from the cache or measured: after one warm-up call each, ``rounds`` interleaved rounds, the
    best time of each kept. Interleaving matters on a shared machine: a slow moment (another
    process, a burst of page faults) then costs every candidate alike instead of deciding the
    choice. Cached under the machine and ``name``; what this process chose is in :func:`chosen`.
    """
    key = f"{machine(device)} | {name}"
    _NAMES[key] = name
    if key not in _CHOSEN:
        cached = _read_cache().get(key)
        if cached is not None:
            _CHOSEN[key] = cached["layout"]
        else:
            seconds = measure(steps, device, rounds)
            _CHOSEN[key] = min(seconds, key=seconds.get)
            _write_cache(key, {"layout": _CHOSEN[key], "seconds": seconds})
    return _CHOSEN[key]


def measure(steps: dict[str, Callable[[], object]], device: torch.device, rounds: int = 3) -> dict[str, float]:
    """Best seconds of each step over ``rounds`` interleaved rounds, after one warm-up call each."""
    def timed(step: Callable[[], object]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    for step in steps.values():
        step()
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(rounds):
        for key, step in steps.items():
            best[key] = min(best[key], timed(step))
    return best


def _probe_step(model: torch.nn.Module, x: torch.Tensor, layout: Layout) -> Callable[[], None]:
    """One forward and backward pass of a copy of ``model`` in ``layout``. The copy leaves the
    model, its gradients and every random generator untouched, so probing changes no result."""
    probe = copy.deepcopy(model)
    probe.layout = layout
    x = x.detach()

    def step() -> None:
        # a stand-in for the loss's gradient, in the response's own layout, as a loss computed
        # from the response gives (a gradient in the other layout slows the backward pass 5x)
        response = probe(x)
        response.backward(torch.ones_like(response))
        for p in probe.parameters():
            p.grad = None

    return step


def _read_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, entry: dict) -> None:
    from .files import write_json

    try:
        write_json(_cache_file(), {**_read_cache(), key: entry})
    except OSError:  # a read-only home: the choice holds for this process only
        pass
