"""Helpers that keep the notebooks short: check parameters, open the evaluation sets, run a
grid of method configurations over them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from . import data
from .data import DatasetNotFound, Sample
from .methods.base import Method
from .runs import Record, run_method  # noqa: F401  (run_method: re-exported for notebooks)
from . import tables
from .tables import runs_table

PROFILES = ("smoke", "demo", "paper")


class ParameterError(ValueError):
    """A notebook or command-line parameter with a bad value; the message names it."""


def check(condition: bool, name: str, value: Any, expected: str) -> None:
    if not condition:
        raise ParameterError(f"parameter {name}={value!r}: expected {expected}")


def check_common(profile: str, seeds: Sequence[int], device: str, max_side: int | None) -> None:
    """Checks shared by every notebook's parameters."""
    check(profile in PROFILES, "profile", profile, f"one of {', '.join(PROFILES)}")
    check(isinstance(seeds, (list, tuple)) and len(seeds) > 0 and all(isinstance(s, int) for s in seeds),
          "seeds", seeds, "a non-empty list of integers")
    check(len(set(seeds)) == len(seeds), "seeds", seeds, "distinct seeds")
    check(device == "auto" or device == "cpu" or str(device).startswith("cuda"), "device", device, "'auto', 'cpu' or 'cuda[:n]'")
    check(max_side is None or (isinstance(max_side, int) and max_side >= 16), "max_side", max_side, "None or an integer >= 16")


def evaluation_sets(
    *, synthetic_images: int, synthetic_size: Sequence[int], bsds_images: int, bsds_split: str = "test",
    data_root: str | None = None, voc_images: int = 0, voc_ground_truth: str = "object", voc_void: str = "drop",
) -> tuple[dict[str, list[Sample]], dict[str, str]]:
    """The image sets with ground truth, and a description of each for table captions.

    BSDS500 is used when present under the data root (``bsds_images`` = N first images by id,
    -1 for the whole split, 0 for none), and so is PASCAL VOC 2012 (``voc_images`` = N first of
    the 150-image list, -1 for all 150); when a dataset is absent, a note says how to get it.
    """
    sets: dict[str, list[Sample]] = {}
    notes: dict[str, str] = {}
    if synthetic_images:
        syn = data.load("synthetic", n=synthetic_images, size=synthetic_size)
        sets[syn.name] = list(syn)
        notes[syn.name] = (f"synthetic: {len(syn)} generated scenes of {synthetic_size[0]}x{synthetic_size[1]} pixels "
                           "with exact fine and coarse ground truth (built in)")
    if bsds_images:
        try:
            full = data.load("bsds500", root=data_root, split=bsds_split)
        except DatasetNotFound as exc:
            notes["bsds500"] = f"BSDS500 not found, so it is left out of this run. {exc}"
        else:
            subset = full[: bsds_images] if bsds_images > 0 else full[:]
            sets[full.name] = subset
            which = "all" if len(subset) == len(full) else f"the first {len(subset)} (by id) of the"
            notes[full.name] = f"BSDS500 {bsds_split}: {which} {len(full)} images, every human annotation"
    if voc_images:
        try:
            voc = data.load("voc2012", root=data_root, ground_truth=voc_ground_truth, void=voc_void)
        except DatasetNotFound as exc:
            notes["voc2012"] = f"PASCAL VOC 2012 not found, so it is left out of this run. {exc}"
        else:
            subset = voc[: voc_images] if voc_images > 0 else voc[:]
            sets[voc.name] = subset
            notes[voc.name] = (f"PASCAL VOC 2012: {len(subset)} of the study's 150 val images (lib/data/voc2012_val150.txt), "
                               f"{voc_ground_truth} PNGs, void border {'not counted' if voc_void == 'drop' else 'kept as a segment'}")
    if not sets:
        raise ParameterError("no evaluation images: set synthetic_images > 0 or make BSDS500 available")
    return sets, notes


def run_grid(
    methods: Iterable[Method], samples: Sequence[Sample], seeds: Sequence[int], store: str | Path,
    *, desc: str = "configurations", progress: bool = True, keep_records: bool = True, evaluator: Any = None, **kwargs: Any,
) -> tuple[pd.DataFrame, dict[str, list[Record]]]:
    """Run every method config on ``samples``; return the per-run table and the records by config
    (an empty dict with ``keep_records=False``, for large grids: read them back with ``run_method``).

    Deterministic methods (``stochastic = False``) run with the first seed only.
    """
    methods = list(methods)
    frames, records = [], {}
    inner = progress and len(methods) <= 4
    for m in tqdm(methods, desc=desc, disable=not progress or inner):
        run_seeds = seeds if getattr(m, "stochastic", True) else list(seeds)[:1]
        recs = run_method(m, samples, run_seeds, store, progress=inner, evaluator=evaluator, **kwargs)
        if keep_records:
            records[m.label()] = recs
        summarize = evaluator.summarize if evaluator is not None else tables.summarize
        frames.append(runs_table(m.name, m.label(), recs, form=getattr(m, "form", ""), summarize=summarize))
    return pd.concat(frames, ignore_index=True), records
