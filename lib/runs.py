"""Running a method over a dataset: batching, caching, resuming, evaluating.

Each (method parameters, image size, seed, image) result is stored as one small ``.npz`` file
under ``<store>/v<CACHE_VERSION>/<method key>/side<max_side>/seed<seed>/<dataset>/<id>.npz`` as
soon as its batch finishes (written atomically). Running again skips what is stored, so an
interrupted notebook resumes where it stopped; a changed parameter gets a new folder instead of
stale results, and a record whose image pixels or ground truth no longer match is recomputed.
Bump ``CACHE_VERSION`` whenever a change to a loop, a model or a metric changes results.

Reproducibility: a seed fixes each image's initial weights whatever its batch, but B = 1 and
B > 1 run different convolution kernels (and CPU and CUDA differ), whose rounding differences
grow through the argmax over hundreds of iterations. Each record stores the device and batch
size that produced it.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import Sample, resize_image
from .evaluation import RegionEvaluator
from .io import save_npz
from .methods.base import Method, params_key
from .runtime import default_batch_size, resolve_device

#: part of every cache path: bump it when results of the same parameters would change
CACHE_VERSION = 5


@dataclass
class Record:
    """One image's result for one method and seed."""

    dataset: str
    id: str
    seed: int
    iterations: int
    seconds: float
    n_labels: int  # distinct labels in the raw label map (before connected components)
    evaluation: Any  # what the evaluator returned (lib.evaluation.ImageEval by default); None without ground truth
    labels: np.ndarray | None = None  # kept only when asked for (figures)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    device: str = ""
    batch_size: int = 1

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.id}"


def _record_path(folder: Path, sample: Sample) -> Path:
    return folder / sample.dataset / f"{sample.id}.npz"


def image_fingerprint(image: np.ndarray) -> str:
    """A short hash of the pixels and shape: a record made from other pixels (a dataset replaced,
    a changed intensity window) is stale even when the image id is the same."""
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes() + str(image.shape).encode(), digest_size=8).hexdigest()


def _save(path: Path, rec: Record, evaluator: Any, fingerprint: str) -> None:
    arrays: dict[str, Any] = {
        "iterations": rec.iterations, "seconds": rec.seconds, "n_labels": rec.n_labels,
        "device": rec.device, "batch_size": rec.batch_size, "image": fingerprint,
    }
    if rec.evaluation is not None:
        arrays.update({f"eval_{k}": v for k, v in evaluator.to_arrays(rec.evaluation).items()})
    if rec.labels is not None:
        arrays["labels"] = rec.labels.astype(np.uint16 if rec.labels.max() < 65536 else np.int64)
    arrays.update({f"extra_{k}": v for k, v in rec.extras.items()})
    save_npz(path, **arrays)


def _load(path: Path, sample: Sample, seed: int, want_labels: bool, evaluator: Any, fingerprint: str) -> Record | None:
    """The stored record, or None when it must be recomputed (damaged, incomplete or stale)."""
    try:
        with np.load(path) as z:
            a = {k: z[k] for k in z.files}
        if want_labels and "labels" not in a:
            return None
        if "image" in a and str(a["image"]) != fingerprint:  # older records carry none
            return None
        evaluation = None
        if sample.segmentations:
            evaluation = evaluator.from_arrays({k[5:]: v for k, v in a.items() if k.startswith("eval_")}, sample)
            if evaluation is None:  # not evaluated, or against other ground truth
                return None
        return Record(
            dataset=sample.dataset, id=sample.id, seed=seed, iterations=int(a["iterations"]),
            seconds=float(a["seconds"]), n_labels=int(a["n_labels"]), evaluation=evaluation,
            labels=a["labels"].astype(np.int64) if "labels" in a else None,
            extras={k[6:]: v for k, v in a.items() if k.startswith("extra_")},
            device=str(a["device"]), batch_size=int(a["batch_size"]),
        )
    except Exception:  # a damaged or old-format file is recomputed, not trusted
        return None


def run_method(
    method: Method,
    samples: Sequence[Sample],
    seeds: Sequence[int],
    store: str | Path,
    *,
    max_side: int | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    keep_labels: bool = False,
    progress: bool = True,
    evaluator: Any = None,
) -> list[Record]:
    """Run ``method`` on every sample for every seed; return one :class:`Record` each.

    Images are shrunk to ``max_side`` (if given) before the method sees them; predictions are
    scored at the ground truth's resolution. Batchable methods get images of one size together,
    ``batch_size`` at a time (default: 1 on CPU, 16 on CUDA). ``evaluator`` scores each result
    against the sample's ground truth (default :class:`lib.evaluation.RegionEvaluator`).
    """
    evaluator = evaluator or RegionEvaluator()
    dev = resolve_device(device)
    batch_size = batch_size or default_batch_size(dev)
    if not method.batchable:
        batch_size = 1
    folder = Path(store) / f"v{CACHE_VERSION}" / params_key(method) / evaluator.key / f"side{max_side or 'full'}"
    records: dict[tuple[int, str], Record] = {}
    todo: list[tuple[int, Sample]] = []
    prints = {s.key: image_fingerprint(s.image) for s in samples}  # once per image, not per seed
    for seed in seeds:
        for s in samples:
            path = _record_path(folder / f"seed{seed}", s)
            rec = _load(path, s, seed, keep_labels, evaluator, prints[s.key]) if path.is_file() else None
            if rec is None:
                todo.append((seed, s))
            else:
                records[(seed, s.key)] = rec
    groups: dict[tuple, list[tuple[int, Sample, np.ndarray]]] = defaultdict(list)
    for seed, s in todo:
        image = resize_image(s.image, max_side)
        groups[image.shape].append((seed, s, image))
    batches = [items[i : i + batch_size] for items in groups.values() for i in range(0, len(items), batch_size)]
    with tqdm(total=len(todo), desc=method.label(), disable=not progress or not todo) as bar:
        for batch in batches:
            start = time.perf_counter()
            outputs = method.run([b[2] for b in batch], [(seed, s.key) for seed, s, _ in batch], dev)
            seconds = (time.perf_counter() - start) / len(batch)
            for (seed, s, _), out in zip(batch, outputs):
                rec = Record(
                    dataset=s.dataset, id=s.id, seed=seed, iterations=out.iterations, seconds=seconds,
                    n_labels=int(len(np.unique(out.labels))),
                    evaluation=evaluator.evaluate(out.labels, s) if s.segmentations else None,
                    labels=out.labels if keep_labels else None, extras=out.extras,
                    device=str(dev), batch_size=len(batch),
                )
                _save(_record_path(folder / f"seed{seed}", s), rec, evaluator, prints[s.key])
                records[(seed, s.key)] = rec
            bar.update(len(batch))
    return [records[(seed, s.key)] for seed in seeds for s in samples]
