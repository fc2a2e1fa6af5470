"""What every notebook does first and the same way: read and check its parameters, record them,
open its evaluation sets.

``nb = study.setup("kanezaki2018", globals())``, the first call after the parameters cell, takes
the notebook's parameters from its namespace. The parameters cell itself is the declaration:
each name, its default (the ``demo`` profile) and its comment. A value of another type than the
default and the profiles give it, or a name the cell does not declare (a misspelled ``-p``
option), is an error that names the parameter. Every parameter is recorded in ``metrics.json``
without being typed twice.
"""

from __future__ import annotations

import ast
import json
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import yaml

from . import data, paths
from .data import DatasetNotFound, Sample
from .report import Report
from .runtime import resolve_device

PROFILES = ("smoke", "demo", "paper")
#: names that IPython puts into every kernel's namespace
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


class ParameterError(ValueError):
    """A notebook or command-line parameter with a bad value; the message names it."""


def check(condition: bool, name: str, value: Any, expected: str) -> None:
    if not condition:
        raise ParameterError(f"parameter {name}={value!r}: expected {expected}")


@dataclass(frozen=True)
class Declared:
    """One parameter as its notebook's parameters cell declares it."""

    name: str
    default: Any
    comment: str
    types: tuple[type, ...]  # the types of its default and of its value in every profile (a None
    # default alone declares no type: data_root, results_dir, whose checks are in check_common)


def _cell_parameters(notebook: Path) -> list[tuple[str, Any, str]]:
    nb = json.loads(notebook.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{notebook}: expected one cell tagged 'parameters', found {len(cells)}")
    source = "".join(cells[0]["source"])
    lines = source.splitlines()
    out = []
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ParameterError(f"{notebook}: the parameters cell holds only `name = literal  # comment` lines")
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line[node.value.end_col_offset:] else ""
        out.append((node.targets[0].id, ast.literal_eval(node.value), comment))
    return out


def _assigned_names(notebook: Path) -> set[str]:
    """Every name the notebook's own code binds (so that re-running its cells in JupyterLab is
    not mistaken for an unknown parameter)."""
    nb = json.loads(notebook.read_text())
    names: set[str] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


@lru_cache(maxsize=None)
def bound_names(notebook: str) -> frozenset[str]:
    return frozenset(_assigned_names(paths.REPO_ROOT / "notebooks" / f"{notebook}.ipynb"))


@lru_cache(maxsize=None)
def declared_parameters(notebook: str) -> dict[str, Declared]:
    """The parameters of ``notebooks/<notebook>.ipynb``: defaults and comments from its
    parameters cell, allowed types from the default and ``params/<notebook>/*.yaml``."""
    path = paths.REPO_ROOT / "notebooks" / f"{notebook}.ipynb"
    if not path.is_file():
        raise ParameterError(f"no notebook {path}")
    profiles = [yaml.safe_load(p.read_text()) or {} for p in sorted((path.parent / "params" / notebook).glob("*.yaml"))]
    out = {}
    for name, default, comment in _cell_parameters(path):
        seen = {type(default)} | {type(p[name]) for p in profiles if name in p}
        out[name] = Declared(name, default, comment, tuple(sorted(seen, key=lambda t: t.__name__)))
    return out


def _type_ok(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True  # an integer where a float is expected
    return isinstance(value, allowed)


def read_parameters(notebook: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's parameters from ``namespace``, checked against their declaration."""
    declared = declared_parameters(notebook)
    known = set(declared) | _KERNEL_NAMES | bound_names(notebook)
    unknown = sorted(n for n, v in namespace.items()
                     if not n.startswith("_") and n not in known and not isinstance(v, types.ModuleType))
    if unknown:
        raise ParameterError(f"{notebook}: unknown parameter(s) {', '.join(unknown)}; this notebook's parameters "
                             f"are: {', '.join(declared)}")
    values = {}
    for name, d in declared.items():
        if name not in namespace:
            raise ParameterError(f"{notebook}: parameter {name} is not set; run the parameters cell first")
        value = namespace[name]
        if d.types != (type(None),) and not _type_ok(value, d.types):
            kinds = " or ".join("None" if t is type(None) else t.__name__ for t in d.types)
            raise ParameterError(f"parameter {name}={value!r}: expected {kinds} like the default {d.default!r} "
                                 f"({d.comment})")
        values[name] = value
    return values


def check_common(profile: str, seeds: Sequence[int], device: str, max_side: int | None,
                 data_root: Any = None, results_dir: Any = None) -> None:
    """Checks shared by every notebook's parameters."""
    for name, folder in (("data_root", data_root), ("results_dir", results_dir)):
        check(folder is None or isinstance(folder, str), name, folder, "None or a folder path")
    check(profile in PROFILES, "profile", profile, f"one of {', '.join(PROFILES)}")
    check(isinstance(seeds, (list, tuple)) and len(seeds) > 0 and all(isinstance(s, int) for s in seeds),
          "seeds", seeds, "a non-empty list of integers")
    check(len(set(seeds)) == len(seeds), "seeds", seeds, "distinct seeds")
    check(device in ("auto", "cpu") or str(device).startswith("cuda"), "device", device, "'auto', 'cpu' or 'cuda[:n]'")
    check(max_side is None or (isinstance(max_side, int) and max_side >= 16), "max_side", max_side,
          "None or an integer >= 16")


@dataclass
class NotebookSetup:
    """What a notebook run needs after its parameters: where results go, the device, the run
    cache, and the options every ``runs.run_method`` / ``runs.run_grid`` call of it takes."""

    notebook: str
    parameters: dict[str, Any]
    device: torch.device
    report: Report
    store: Path  # the run cache, shared by the profile's notebooks

    @property
    def profile(self) -> str:
        return self.parameters["profile"]

    @property
    def seeds(self) -> list[int]:
        return list(self.parameters["seeds"])

    @property
    def folder(self) -> Path:
        return self.report.folder

    @property
    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``runs.run_method`` and ``runs.run_grid``."""
        p = self.parameters
        return {"max_side": p.get("max_side"), "device": self.device, "batch_size": p.get("batch_size") or None,
                "progress": p.get("progress", True)}

    def table(self, df, name: str, title: str, *, settings: Sequence[str] = (), **kwargs: Any):
        """``Report.table`` with this run's seeds and the values of the parameters named in
        ``settings`` in the caption; returns what the notebook should display."""
        kwargs.setdefault("seeds", self.seeds)
        values = {k: self.parameters[k] for k in settings}
        self.report.table(df, name, title, settings=values, **kwargs)
        return self.report.show(name)

    def figure(self, fig, name: str, title: str) -> None:
        """``Report.figure``: png + pdf, named in ``metrics.json``."""
        self.report.figure(fig, name, title)


def setup(notebook: str, namespace: Mapping[str, Any]) -> NotebookSetup:
    """Read, check and record the parameters of ``notebook`` (see the module docstring), pick
    the device and open ``results/<profile>/<notebook>/``."""
    p = read_parameters(notebook, namespace)
    check_common(p["profile"], p["seeds"], p["device"], p.get("max_side"), p.get("data_root"), p.get("results_dir"))
    if "batch_size" in p:
        check(isinstance(p["batch_size"], int) and p["batch_size"] >= 0, "batch_size", p["batch_size"],
              "an integer >= 0 (0: the device's default)")
    device = resolve_device(p["device"])
    folder = paths.results_dir(p["profile"], notebook, p.get("results_dir"))
    report = Report(folder, notebook, p["profile"], parameters={**p, "device": str(device)})
    return NotebookSetup(notebook, p, device, report, folder.parent / "cache")


def subset_note(what: str, taken: int, present: int, official: int | None = None) -> str:
    """How a table names the images it ran on: all of a dataset, or which part of it."""
    which = f"all {present}" if taken == present else f"the first {taken} (by id) of the {present}"
    short = f" (a subset: the full dataset has {official})" if official is not None and present < official else ""
    return f"{what}: {which} images present{short}"


def _built_in(sets: dict, notes: dict, name: str, n: int, size: Sequence[int], what: str) -> None:
    """Add ``n`` generated images of a built-in dataset, and its caption note."""
    ds = data.load(name, n=n, size=size)
    sets[ds.name] = list(ds)
    notes[ds.name] = f"{ds.name}: {len(ds)} generated {what}, {size[0]}x{size[1]} pixels (built in)"


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
        _built_in(sets, notes, "synthetic", synthetic_images, synthetic_size,
                  "scenes with exact fine and coarse ground truth")
    if bsds_images:
        try:
            full = data.load("bsds500", root=data_root, split=bsds_split)
        except DatasetNotFound as exc:
            notes["bsds500"] = f"BSDS500 not found, so it is left out of this run. {exc}"
        else:
            subset = full[: bsds_images] if bsds_images > 0 else full[:]
            sets[full.name] = subset
            notes[full.name] = subset_note(f"BSDS500 {bsds_split}, every human annotation", len(subset), len(full))
    if voc_images:
        try:
            voc = data.load("voc2012", root=data_root, ground_truth=voc_ground_truth, void=voc_void)
        except DatasetNotFound as exc:
            notes["voc2012"] = f"PASCAL VOC 2012 not found, so it is left out of this run. {exc}"
        else:
            subset = voc[: voc_images] if voc_images > 0 else voc[:]
            sets[voc.name] = subset
            void = "not counted" if voc_void == "drop" else "kept as a segment"
            notes[voc.name] = (f"PASCAL VOC 2012: {len(subset)} of the study's 150 val images "
                               f"(lib/data/voc2012_val150.txt), {voc_ground_truth} PNGs, void border {void}")
    if not sets:
        raise ParameterError("no evaluation images: set synthetic_images > 0 or make BSDS500 available")
    return sets, notes


#: images in the full lesion datasets, to say when a copy is a subset
LESION_DATASETS = {"ph2": ("PH2", 200), "lung_ct": ("Kaggle lung CT 2D", 267)}


def lesion_sets(*, synthetic_images: int, synthetic_size: Sequence[int], data_root: str | None = None,
                **counts: int) -> tuple[dict[str, list[Sample]], dict[str, str]]:
    """S3-Net's image sets and their caption notes: built-in synthetic lesions, and each lesion
    dataset of ``counts`` (``ph2=N``, ``lung_ct=N``: the first N by id, -1 for all, 0 for none)
    when present under the data root."""
    sets: dict[str, list[Sample]] = {}
    notes: dict[str, str] = {}
    if synthetic_images:
        _built_in(sets, notes, "synthetic_lesions", synthetic_images, synthetic_size, "lesion images with exact masks")
    for name, count in counts.items():
        if not count:
            continue
        what, official = LESION_DATASETS[name]
        try:
            full = data.load(name, root=data_root)
        except DatasetNotFound as exc:
            notes[name] = f"{what} not found, so it is left out of this run. {exc}"
            continue
        sets[name] = full[:count] if count > 0 else full[:]
        notes[name] = subset_note(what, len(sets[name]), len(full), official)
    if not sets:
        raise ParameterError("no evaluation images: set synthetic_images > 0 or make a lesion dataset available")
    return sets, notes
