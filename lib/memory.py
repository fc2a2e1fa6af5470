"""The memory ``segment`` will need, estimated from the images' sizes before anything is allocated.

Why: a per-image method keeps every layer's activations of the whole image for the backward pass,
thousands of bytes per pixel. On a 9000 x 9000 photograph that is hundreds of GB: the command used
to read every image, create ``--out`` and then allocate until the machine ran out of memory (or
the kernel killed it), leaving an empty folder. Refusing at once, with the estimate, the memory
available and the largest ``--max-side`` that fits, costs a second instead.

How: the bytes autograd saves for the backward pass are what grows with the image, and they can be
counted exactly. Once per method configuration, :func:`probe` runs the method itself for one
iteration on two small images, on the CPU, inside ``torch.autograd.graph.saved_tensors_hooks``,
and records the most bytes held for backward at one time (each storage once). Two sizes give a
part that grows with the pixels and one that does not (parameters and the like). Of the memory
layouts the loop may choose (``lib/layout.py``) it runs the two mixed ones, which convert between
formats and so keep both copies of what they convert (at least as much as either pure layout:
kanezaki2018 3,220 against 2,420 B/px), and keeps the larger; a layout forced with
``SEGSTUDY_LAYOUT`` is probed alone. The result is kept in ``$SEGSTUDY_CACHE_DIR/memory.json``
(beside the layout cache) under the torch version and the fingerprint of the code the method runs
(``lib/code_fingerprint.py``), so a later command reads it instead of probing, and an edit of
that code's statements probes again.

The estimate scales that to the pixels the network sees (after ``--max-side``; S3-Net's code form
always sees its fixed size) and to the images optimised together (``--batch``), times
:data:`SAFETY` for what the hooks do not see, plus the images themselves on the host
(:data:`HOST_BYTES_PER_PIXEL`, :data:`HELD_BYTES_PER_PIXEL`). It is compared with what the system
says is available: ``MemAvailable`` of ``/proc/meminfo`` for the CPU and the host,
``torch.cuda.mem_get_info`` for a GPU. Where neither can be read (not Linux), nothing is refused.

Measured on a 2-core AMD EPYC (torch 2.13, glibc, ``lib.runtime.tune_cpu_allocator`` on, as
``segment`` runs it), two iterations of one image of 256 to 1024 pixels a side, in NCHW and in a
mixed layout: the process's peak resident memory growth per pixel against the probe's
saved-for-backward bytes per pixel (the worst layout's):

==========================  ==============  =====================  ======
method (default form)       saved (probe)   peak RSS growth        ratio
==========================  ==============  =====================  ======
kanezaki2018 paper M=2      3,220 B/px      5,700 - 8,840 B/px     <= 2.75
kim2020 code mu=5 M=3       5,212 B/px      9,300 - 10,830 B/px    <= 2.08
s3net paper                 19,860 B/px     36,100 - 37,120 B/px   <= 1.87
==========================  ==============  =====================  ======
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

#: the estimate is this many times the bytes saved for backward. The hooks do not see the
#: gradients of the activations during the backward pass, the loss's temporaries, SLIC's arrays,
#: nor what the allocator keeps but cannot reuse (glibc without trimming; CUDA's caching
#: allocator); measured, these add up to at most 2.75 times the saved bytes (the table in the
#: module docstring): 3 covers that with a small margin.
SAFETY = 3.0
#: host bytes per pixel of the largest image while it is read, shrunk, its labels upsampled, its
#: overlay drawn and both written (measured: 57 - 62 B/px on 2000 x 2000 and 3000 x 3000 images;
#: skimage's anti-aliased resize works in float64), rounded up
HOST_BYTES_PER_PIXEL = 100
#: every image is kept decoded (uint8 RGB) while the others run
HELD_BYTES_PER_PIXEL = 3
#: the probe images' sides
PROBE_SIDES = (32, 64)

GiB = 1 << 30


@dataclass(frozen=True)
class Probe:
    """Bytes saved for backward by one image's iteration: ``fixed + per_pixel * pixels``."""

    fixed: float
    per_pixel: float


_PROBES: dict[str, Probe] = {}


class _SavedBytes:
    """Pack / unpack hooks that count the bytes of the storages autograd holds for backward: each
    storage once however many tensors view it, released when the graph lets the last one go."""

    def __init__(self) -> None:
        self.held: dict[tuple, list[int]] = {}  # storage -> [references, bytes]
        self.now = self.peak = 0

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), str(tensor.device))
        entry = self.held.setdefault(key, [0, storage.nbytes()])
        if entry[0] == 0:
            self.now += entry[1]
            self.peak = max(self.peak, self.now)
        entry[0] += 1
        return _Held(self, key, tensor)

    @staticmethod
    def unpack(held: "_Held"):
        return held.tensor

    def release(self, key: tuple) -> None:
        entry = self.held[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.now -= entry[1]
            del self.held[key]


class _Held:
    """A saved tensor; its storage stops counting when autograd drops it."""

    __slots__ = ("owner", "key", "tensor")

    def __init__(self, owner: _SavedBytes, key: tuple, tensor) -> None:
        self.owner, self.key, self.tensor = owner, key, tensor

    def __del__(self) -> None:
        self.owner.release(self.key)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables set inside the block (the layout a probe runs in), restored after it."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def fixed_side(method: Any) -> int | None:
    """The side the network always sees whatever the image (S3-Net's code form: 256), or None."""
    return getattr(getattr(method, "config", None), "size", None)


def _saved_bytes(method: Any, side: int) -> int:
    """Peak bytes held for backward by one iteration of ``method`` on a ``side`` x ``side`` image."""
    import numpy as np
    import torch

    changes = {"iterations": 1}
    if fixed_side(method):
        changes["size"] = side  # probe the fixed-size form at the probe's size; it scales alike
    small = type(method)(config=dataclasses.replace(method.config, **changes))
    image = np.random.default_rng(0).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    optimise = getattr(small, "optimise", None) or small.run
    counter = _SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        optimise([image], [(0, "memory probe")], torch.device("cpu"))
    return counter.peak


def _cache_file() -> Path:
    return Path(os.environ.get("SEGSTUDY_CACHE_DIR") or Path.home() / ".cache" / "segstudy") / "memory.json"


def _read_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def probe(method: Any) -> Probe:
    """The bytes ``method`` saves for backward per image, as a part that does not grow with the
    image and one per pixel it sees; measured once per configuration (see the module docstring)."""
    import torch

    from .code_fingerprint import code_fingerprint
    from .files import write_json

    forced = os.environ.get("SEGSTUDY_LAYOUT")
    layouts = [forced] if forced else ["conv=channels_last,norm=nchw", "conv=nchw,norm=channels_last"]
    # the number of iterations changes no memory: one probe serves every --iterations
    settings = {k: v for k, v in method.params().items() if k != "iterations"}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    code = code_fingerprint(method)  # the statements the method runs (lib/code_fingerprint.py)
    key = f"torch {torch.__version__} code {code} | {type(method).__name__} {digest} | {', '.join(layouts)}"
    if key not in _PROBES:
        cached = _read_cache().get(key)
        if cached is not None:
            _PROBES[key] = Probe(float(cached["fixed"]), float(cached["per_pixel"]))
            return _PROBES[key]
        a, b = PROBE_SIDES
        worst = Probe(0.0, 0.0)
        for layout in layouts:
            with _environment(SEGSTUDY_LAYOUT=layout):
                small, large = _saved_bytes(method, a), _saved_bytes(method, b)
            per_pixel = max(0.0, (large - small) / (b * b - a * a))
            fixed = max(0.0, small - per_pixel * a * a)
            if fixed + per_pixel * b * b > worst.fixed + worst.per_pixel * b * b:
                worst = Probe(fixed, per_pixel)
        _PROBES[key] = worst
        try:
            write_json(_cache_file(), {**_read_cache(), key: dataclasses.asdict(worst)})
        except OSError:  # a read-only home: measured again by the next command
            pass
    return _PROBES[key]


def network_shape(method: Any, shape: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """The ``(height, width)`` the network sees for an image of ``shape`` (``resize_image``'s rule)."""
    side = fixed_side(method)
    if side:
        return side, side
    h, w = shape
    if not max_side or max_side >= max(h, w):
        return h, w
    scale = max_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def network_bytes(method: Any, shape: tuple[int, int], n_images: int = 1) -> int:
    """Estimated bytes of ``n_images`` images of the network's input ``shape`` optimised together."""
    p = probe(method)
    h, w = network_shape(method, shape, None)
    return int(SAFETY * n_images * (p.fixed + p.per_pixel * h * w))


def host_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (what can be allocated without swapping), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def device_available(device: Any) -> int | None:
    """Free bytes of a CUDA device (``torch.cuda.mem_get_info``); the host's for the CPU."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return host_available()


def image_shape(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(height, width)`` from an image file's header, without decoding it; None when Pillow cannot
    open it (then reading it says why)."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # the estimate judges the size, not Pillow's bomb check
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return im.height, im.width
    except Exception:
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


@dataclass(frozen=True)
class Need:
    network: int  # bytes, on the device
    host: int  # bytes, on the host (the CPU's memory)


def need(method: Any, shapes: Mapping[Any, tuple[int, int]], max_side: int | None, batch: int) -> Need:
    """What ``segment`` needs for images of ``shapes`` (``{image: (height, width)}``): the largest
    group of same-sized network inputs (at most ``batch`` of them at once), and on the host every
    image decoded plus the largest one's processing."""
    groups: dict[tuple[int, int], int] = {}
    for shape in shapes.values():
        s = network_shape(method, shape, max_side)
        groups[s] = groups.get(s, 0) + 1
    network = max((network_bytes(method, s, min(batch, n)) for s, n in groups.items()), default=0)
    pixels = [h * w for h, w in shapes.values()]
    host = HELD_BYTES_PER_PIXEL * sum(pixels) + HOST_BYTES_PER_PIXEL * max(pixels, default=0)
    return Need(network, host)


def _fits(n: Need, on_cuda: bool, device_free: int | None, host_free: int | None) -> bool:
    if on_cuda:
        on_gpu = device_free is None or n.network <= device_free
        return on_gpu and (host_free is None or n.host <= host_free)
    return host_free is None or n.network + n.host <= host_free


def _gib(n: float) -> str:
    return f"{n / GiB:,.1f} GiB"


def shortage(method: Any, shapes: Mapping[Any, tuple[int, int]], max_side: int | None, batch: int,
             device: Any, min_max_side: int = 16) -> str | None:
    """None when ``segment`` fits in the memory available (or that is unknown); otherwise what it
    needs, what is available, and the largest ``--max-side`` that fits (or why none does)."""
    import torch

    on_cuda = torch.device(device).type == "cuda"
    host_free = host_available()
    device_free = device_available(device) if on_cuda else host_free
    if not shapes or (device_free is None and host_free is None):
        return None
    now = need(method, shapes, max_side, batch)
    if _fits(now, on_cuda, device_free, host_free):
        return None
    largest = max(shapes, key=lambda k: shapes[k][0] * shapes[k][1])
    h, w = shapes[largest]
    others = f" and {len(shapes) - 1} other image(s)" if len(shapes) > 1 else ""
    nh, nw = network_shape(method, (h, w), max_side)
    together = f", {batch} at once" if batch > 1 else ""
    if on_cuda:
        needs = (f"needs about {_gib(now.network)} on {device} for the network ({nh}x{nw} pixels{together}) "
                 f"and {_gib(now.host)} on the host for the images; {_gib(device_free or 0)} available on "
                 f"the GPU, {_gib(host_free or 0)} on the host")
    else:
        needs = (f"needs about {_gib(now.network + now.host)} of memory ({_gib(now.network)} for the network "
                 f"at {nh}x{nw} pixels{together}, {_gib(now.host)} for the images) and "
                 f"{_gib(host_free or 0)} available (MemAvailable in /proc/meminfo)")
    what = f"{largest} ({h}x{w} pixels, HxW){others} with {method.label()} {needs}"
    # the largest --max-side that fits: the need grows with it, so a bisection finds it
    def fits(side: int) -> bool:
        return _fits(need(method, shapes, side, batch), on_cuda, device_free, host_free)

    top = max(max(s) for s in shapes.values())
    top = min(top, max_side) if max_side else top
    if fixed_side(method) or not fits(min_max_side):
        if not _fits(Need(0, now.host), on_cuda, device_free, host_free):
            fix = "the image files themselves do not fit: shrink them, segment fewer at once, or free memory"
        elif fixed_side(method):
            fix = (f"its network always runs at {nh}x{nw}, so --max-side does not help: lower --batch, free "
                   "memory, or use another device")
        else:
            fix = f"not even --max-side {min_max_side} fits: lower --batch, free memory or use another device"
        return f"{what}; {fix}"
    low, high = min_max_side, top  # fits(low); not fits(top), as now
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    batch_hint = " (or a smaller --batch)" if batch > 1 else ""
    return (f"{what}; --max-side {low} fits: rerun with it{batch_hint} (the label maps are still written at "
            f"each image's size), or free memory")
