"""Running methods over datasets: batching, caching, resuming, evaluating, and the runs table.

The one path from an image to a number: a dataset's samples (``lib/data``) -> a method
(``lib/methods``, whose loop is in ``lib/loops``) -> one :class:`Record` per (method, seed,
image), scored by an evaluator (``lib/evaluation.py``) and cached -> :func:`runs_table`, one
row per (method, seed, dataset) with the method's parameters as columns -> ``lib/tables.py``.

Each (method parameters, image size, seed, image) result is stored as one small ``.npz`` file
under ``<store>/<method key>/<evaluator>/side<max_side>/code-<code>/seed<seed>/<dataset>/<id>.npz``
as soon as its batch finishes (written atomically; the temporary file of a killed run is removed
by the next). Running again skips what is stored, so an interrupted notebook resumes where it
stopped. Nothing stale is served: a changed parameter gets a new folder, so does a change to the
statements of the code that computes a record (``<code>``: :func:`record_code`, the fingerprint
of the method's class, the evaluator's and this runner, ``lib/code_fingerprint.py``), and a
record whose image pixels or ground truth no longer match is recomputed. The runs table says
which code made each row (column ``code``).

Reproducibility: a seed fixes each image's initial weights whatever its batch, but B = 1 and
B > 1 run different convolution kernels (and CPU and CUDA differ), whose rounding differences
grow through the argmax over hundreds of iterations. Each record stores the device and batch
size that produced it, and the memory layout measured fastest on that machine (``lib/layout.py``).
"""

from __future__ import annotations

import hashlib
import time
import warnings
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .code_fingerprint import code_fingerprint
from .data import Sample, resize_image
from .evaluation import Evaluator
from .files import remove_orphans, save_npz
from .methods.base import Method, columns, params_key
from .runtime import default_batch_size, resolve_device, tune_cpu_allocator

@dataclass
class Record:
    """One image's result for one method and seed."""

    dataset: str
    id: str
    seed: int
    iterations: int
    seconds: float
    n_labels: int  # distinct labels in the raw label map (before connected components)
    evaluation: Any  # what the evaluator returned (e.g. lib.evaluation.ImageEval); None without ground truth
    labels: np.ndarray | None = None  # kept only when asked for (figures)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    device: str = ""
    batch_size: int = 1
    layout: str = ""  # the network's memory layout (lib/layout.py)
    code: str = ""  # the fingerprint of the code that made it (record_code)
    computed: bool = False  # made by this call (False: read from the cache); not stored

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
        "device": rec.device, "batch_size": rec.batch_size, "layout": rec.layout, "image": fingerprint,
    }
    if rec.evaluation is not None:
        arrays.update({f"eval_{k}": v for k, v in evaluator.to_arrays(rec.evaluation).items()})
    if rec.labels is not None:
        arrays["labels"] = rec.labels.astype(np.uint16 if rec.labels.max() < 65536 else np.int64)
    arrays.update({f"extra_{k}": v for k, v in rec.extras.items()})
    save_npz(path, **arrays)


#: what a damaged or half-written cache file raises when read; anything else is a bug and is raised
UNREADABLE = (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile)


def _load(path: Path, sample: Sample, seed: int, want_labels: bool, evaluator: Evaluator, fingerprint: str,
          code: str) -> Record | None:
    """The stored record, or None when it must be recomputed: unreadable (reported), made
    without labels when labels are wanted, or stale (other pixels or other ground truth)."""
    try:
        with np.load(path) as z:
            a = {k: z[k] for k in z.files}
        iterations, seconds, n_labels = int(a["iterations"]), float(a["seconds"]), int(a["n_labels"])
        device, batch_size = str(a["device"]), int(a["batch_size"])
        layout = str(a["layout"]) if "layout" in a else ""  # older records carry none
    except UNREADABLE as exc:
        warnings.warn(f"cache record {path} is unreadable ({type(exc).__name__}: {exc}); recomputing it", stacklevel=3)
        return None
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
        dataset=sample.dataset, id=sample.id, seed=seed, iterations=iterations, seconds=seconds,
        n_labels=n_labels, evaluation=evaluation,
        labels=a["labels"].astype(np.int64) if "labels" in a else None,
        extras={k[6:]: v for k, v in a.items() if k.startswith("extra_")},
        device=device, batch_size=batch_size, layout=layout, code=code,
    )


def record_code(method: Method, evaluator: Evaluator) -> str:
    """The fingerprint of the code that makes ``method``'s records scored by ``evaluator``: its
    class (with its network, losses and loop), the evaluator's (with its metrics) and this
    runner's (``lib/code_fingerprint.py``). Part of every record's cache folder."""
    return code_fingerprint(method, evaluator, run_method)


def run_method(
    method: Method,
    samples: Sequence[Sample],
    seeds: Sequence[int],
    store: str | Path,
    *,
    evaluator: Evaluator,
    max_side: int | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    keep_labels: bool = False,
    progress: bool = True,
) -> list[Record]:
    """Run ``method`` on every sample for every seed; return one :class:`Record` each.

    Images are shrunk to ``max_side`` (if given) before the method sees them; predictions are
    scored at the ground truth's resolution. Batchable methods get images of one size together,
    ``batch_size`` at a time (default: 1 on CPU, 16 on CUDA). ``evaluator`` scores each result
    against the sample's ground truth (:class:`lib.evaluation.Evaluator`).
    """
    dev = resolve_device(device)
    if dev.type == "cpu":
        tune_cpu_allocator()
    batch_size = batch_size or default_batch_size(dev)
    if not method.batchable:
        batch_size = 1
    code = record_code(method, evaluator)
    folder = Path(store) / params_key(method) / evaluator.key / f"side{max_side or 'full'}" / f"code-{code}"
    remove_orphans(folder, recursive=True)  # half-written records of a killed run
    records: dict[tuple[int, str], Record] = {}
    todo: list[tuple[int, Sample]] = []
    prints = {s.key: image_fingerprint(s.image) for s in samples}  # once per image, not per seed
    for seed in seeds:
        for s in samples:
            path = _record_path(folder / f"seed{seed}", s)
            rec = _load(path, s, seed, keep_labels, evaluator, prints[s.key], code) if path.is_file() else None
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
                    device=str(dev), batch_size=len(batch), layout=out.layout, code=code, computed=True,
                )
                _save(_record_path(folder / f"seed{seed}", s), rec, evaluator, prints[s.key])
                records[(seed, s.key)] = rec
            bar.update(len(batch))
    return [records[(seed, s.key)] for seed in seeds for s in samples]


@dataclass(frozen=True)
class Grid:
    """Configurations that a notebook runs on all of its evaluation images, with every seed
    (deterministic ones with the first; :func:`grid_seeds`). ``lib/plans.py`` builds each
    notebook's grids, so that the notebook and the cluster workflow run the same list."""

    name: str  # the notebook's name for it (progress bars, cluster job names)
    methods: tuple[Method, ...]
    keep_labels: bool = False  # the notebook draws figures from the label maps
    gpu: bool = True  # worth an accelerator (a network per image); False: CPU baselines

    def __iter__(self):
        return iter(self.methods)

    def __len__(self) -> int:
        return len(self.methods)

    def labels(self) -> list[str]:
        return [m.label() for m in self.methods]


def grid_seeds(method: Method, seeds: Sequence[int]) -> list[int]:
    """The seeds ``method`` runs with: all of them, or the first for a deterministic method."""
    return list(seeds) if method.stochastic else list(seeds)[:1]


def run_grid(
    methods: Grid | Iterable[Method], samples: Sequence[Sample], seeds: Sequence[int], store: str | Path,
    *, evaluator: Evaluator, desc: str = "configurations", progress: bool = True, **kwargs: Any,
) -> tuple[pd.DataFrame, dict[str, list[Record]]]:
    """Run every method on ``samples``; return the runs table (:func:`runs_table`) and the
    records by method label. Deterministic methods (``stochastic = False``) run with the first
    seed only. A :class:`Grid` brings its name and ``keep_labels``. ``kwargs`` go to
    :func:`run_method`."""
    if isinstance(methods, Grid):
        kwargs.setdefault("keep_labels", methods.keep_labels)
        desc = methods.name
    methods = list(methods)
    labels = [m.label() for m in methods]
    if len(set(labels)) < len(labels):  # the records are keyed by label
        raise ValueError(f"two configurations share a label: {sorted({x for x in labels if labels.count(x) > 1})}")
    frames, records = [], {}
    inner = progress and len(methods) <= 4
    for m in tqdm(methods, desc=desc, disable=not progress or inner):
        recs = run_method(m, samples, grid_seeds(m, seeds), store, evaluator=evaluator, progress=inner, **kwargs)
        records[m.label()] = recs
        frames.append(runs_table(m, recs, evaluator))
    return pd.concat(frames, ignore_index=True), records


def runs_table(method: Method, records: Iterable[Record], evaluator: Evaluator) -> pd.DataFrame:
    """One row per (seed, dataset): the method's columns (name, form, label, parameters), the
    fingerprint of the code that made its records (``code``), the evaluator's dataset-level numbers (``evaluator.summarize``) and run statistics."""
    by_run: dict[tuple[int, str], list[Record]] = {}
    for r in records:
        by_run.setdefault((r.seed, r.dataset), []).append(r)
    rows = []
    for (seed, dataset), recs in sorted(by_run.items()):
        evals = [r.evaluation for r in recs if r.evaluation is not None]
        if not evals:
            continue
        iters = np.array([r.iterations for r in recs])
        rows.append({
            **columns(method), "code": recs[0].code, "dataset": dataset, "seed": seed, "images": len(evals),
            **evaluator.summarize(evals),
            "iterations_mean": float(iters.mean()), "iterations_min": int(iters.min()),
            "iterations_max": int(iters.max()),
            "final_labels": float(np.mean([r.n_labels for r in recs])),
            "one_label_share": float(np.mean([r.n_labels == 1 for r in recs])),  # collapsed to one cluster
            "seconds_per_image": float(np.mean([r.seconds for r in recs])),
        })
    return pd.DataFrame(rows)
