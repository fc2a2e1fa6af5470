"""What every notebook does first and the same way: read and check its parameters, record them,
open its evaluation sets.

``nb = study.setup("kanezaki2018", globals())``, the first call after the parameters cell, takes
the notebook's parameters from its namespace. The parameters cell itself is the declaration:
each name, its default (the ``demo`` profile) and its comment. A value of another type than the
default and the profiles give it, or a name the cell does not declare (a misspelled ``-p``
option), is an error that names the parameter. Every parameter is recorded in ``metrics.json``
without being typed twice.

A dataset the parameters ask for (``bsds_images``, ``voc_images``, ``ph2_images``,
``lung_images``, ``animal_images``, ``pet_images``, ``stanford_images`` not 0) that is not under the data root stops the run with the loader's message
(the file, the expected layout, the command that gets it), unless ``missing_data = "skip"``,
the ``demo`` default: then the run goes on without it, and every table caption, ``metrics.json``
and the results index say which dataset was absent and why. ``nb.finish()``, the last cell,
marks the run complete; the index marks a run that stopped before it.
"""

from __future__ import annotations

import ast
import json
import types
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import yaml

from . import data, parameters, paths
from .data import DatasetNotFound, Sample
from .parameters import ParameterError
from .report import Report
from .runtime import resolve_device

PROFILES = ("smoke", "demo", "paper")
#: ``missing_data``: what a run does with a requested dataset that is absent
MISSING_DATA = ("fail", "skip")
#: names that IPython puts into every kernel's namespace
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


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
    # default alone declares no type: data_root, results_dir, whose ranges are in lib/parameters.py)


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


def read_parameters(notebook: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's parameters from ``namespace``, checked (``lib/parameters.py``): a name the
    parameters cell does not declare, a value of another type or out of its range is an error."""
    declared = declared_parameters(notebook)
    known = set(declared) | _KERNEL_NAMES | bound_names(notebook)
    unknown = sorted(n for n, v in namespace.items()
                     if not n.startswith("_") and n not in known and not isinstance(v, types.ModuleType))
    if unknown:
        raise ParameterError(f"{notebook}: unknown parameter(s) {', '.join(unknown)}; this notebook's parameters "
                             f"are: {', '.join(declared)}")
    values = {}
    for name in declared:
        if name not in namespace:
            raise ParameterError(f"{notebook}: parameter {name} is not set; run the parameters cell first")
        values[name] = namespace[name]
    parameters.check(notebook, values, declared)
    return values


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
    def absent(self) -> dict[str, str]:
        """Requested datasets this run goes without, and why (as ``metrics.json`` records them)."""
        return self.report.meta["absent"]

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

    def evaluation_sets(self, **kwargs: Any) -> tuple[dict[str, list[Sample]], dict[str, str]]:
        """:func:`evaluation_sets` under this run's ``missing_data``; returns the sets and their
        caption notes, and records what was used and what was absent."""
        return self._opened(evaluation_sets(**kwargs, missing=self.parameters["missing_data"]))

    def lesion_sets(self, **kwargs: Any) -> tuple[dict[str, list[Sample]], dict[str, str]]:
        """:func:`lesion_sets` under this run's ``missing_data`` (see :meth:`evaluation_sets`)."""
        return self._opened(lesion_sets(**kwargs, missing=self.parameters["missing_data"]))

    def pet_sets(self, **kwargs: Any) -> tuple[dict[str, list[Sample]], dict[str, str]]:
        """:func:`pet_sets` under this run's ``missing_data`` (see :meth:`evaluation_sets`)."""
        return self._opened(pet_sets(**kwargs, missing=self.parameters["missing_data"]))

    def scene_sets(self, **kwargs: Any) -> tuple[dict[str, list[Sample]], dict[str, str]]:
        """:func:`scene_sets` under this run's ``missing_data`` (see :meth:`evaluation_sets`)."""
        return self._opened(scene_sets(**kwargs, missing=self.parameters["missing_data"]))

    def _opened(self, opened: "Opened") -> tuple[dict[str, list[Sample]], dict[str, str]]:
        for why in opened.absent.values():
            print(f"- absent: {why}")
        self.report.datasets({name: len(s) for name, s in opened.sets.items()}, opened.absent)
        return opened.sets, opened.notes

    def finish(self, **headline: Any) -> None:
        """The last cell: record the headline numbers and mark the run complete in
        ``metrics.json`` (the results index marks a run without it as incomplete)."""
        self.report.metrics(**headline)
        self.report.complete()
        absent = f"; absent: {', '.join(self.absent)}" if self.absent else ""
        print(f"complete: {len(self.report.meta['tables'])} tables, {len(self.report.meta['figures'])} figures "
              f"in {self.folder}{absent}")


def setup(notebook: str, namespace: Mapping[str, Any]) -> NotebookSetup:
    """Read, check and record the parameters of ``notebook`` (see the module docstring), pick
    the device and open ``results/<profile>/<notebook>/``."""
    p = read_parameters(notebook, namespace)
    device = resolve_device(p["device"])
    folder = paths.results_dir(p["profile"], notebook, p.get("results_dir"))
    report = Report(folder, notebook, p["profile"], parameters={**p, "device": str(device)})
    return NotebookSetup(notebook, p, device, report, folder.parent / "cache")


def subset_note(what: str, taken: int, present: int, official: int | None = None) -> str:
    """How a table names the images it ran on: all of a dataset, or which part of it."""
    which = f"all {present}" if taken == present else f"the first {taken} (by id) of the {present}"
    short = f" (a subset: the full dataset has {official})" if official is not None and present < official else ""
    return f"{what}: {which} images present{short}"


@dataclass
class Opened:
    """The image sets a run evaluates on."""

    sets: dict[str, list[Sample]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # dataset -> how captions name it
    absent: dict[str, str] = field(default_factory=dict)  # requested dataset -> why it is not here

    def built_in(self, name: str, n: int, size: Sequence[int], what: str) -> None:
        """Add ``n`` generated images of a built-in dataset, and its caption note."""
        ds = data.load(name, n=n, size=size)
        self.sets[ds.name] = list(ds)
        self.notes[ds.name] = f"{ds.name}: {len(ds)} generated {what}, {size[0]}x{size[1]} pixels (built in)"

    def requested(self, name: str, what: str, parameter: str, missing: str, **load: Any):
        """``data.load(name, **load)`` for a dataset that ``parameter`` asks for. When it is not
        under the data root: the loader's message as an error (``missing="fail"``), or None
        with the reason kept in ``absent`` (``missing="skip"``)."""
        check(missing in MISSING_DATA, "missing_data", missing, " or ".join(map(repr, MISSING_DATA)))
        try:
            return data.load(name, **load)
        except DatasetNotFound as exc:
            if missing == "fail":
                raise DatasetNotFound(f"{parameter} asks for {what}, which is not there: {exc}\n  (or set "
                                      "missing_data='skip' to run without it; every caption then says so)") from None
            reason = str(exc).splitlines()[0]
            self.absent[name] = f"{what} (asked for by {parameter}): {reason}"
            return None

    def require_some(self, counts: str) -> "Opened":
        """``self``, or a ParameterError when no image set is left."""
        if not self.sets:
            absent = f", and absent: {'; '.join(self.absent.values())}" if self.absent else ""
            raise ParameterError(f"no evaluation images: {counts}{absent}")
        return self


def evaluation_sets(
    *, synthetic_images: int, synthetic_size: Sequence[int], bsds_images: int, bsds_split: str = "test",
    data_root: str | None = None, voc_images: int = 0, voc_ground_truth: str = "object", voc_void: str = "drop",
    missing: str = "fail", require: bool = True,
) -> Opened:
    """The image sets with ground truth, and a description of each for table captions.

    ``bsds_images`` BSDS500 images (the first N by id, -1 for the whole split, 0 for none) and
    ``voc_images`` PASCAL VOC 2012 images (the first N of the study's 150-image list, -1 for
    all 150) from the data root; ``missing`` says what an absent one does (see the module);
    ``require=False`` returns what there is, even nothing (the cluster's dry run).
    """
    opened = Opened()
    if synthetic_images:
        opened.built_in("synthetic", synthetic_images, synthetic_size, "scenes with exact fine and coarse ground truth")
    if bsds_images:
        # the first N only: a copy that lacks later images still serves them (the loader names any
        # image of the part asked for that is missing)
        full = opened.requested("bsds500", f"BSDS500 {bsds_split}", f"bsds_images={bsds_images}", missing,
                                root=data_root, split=bsds_split, limit=bsds_images if bsds_images > 0 else None)
        if full is not None:
            subset = full[:]
            opened.sets[full.name] = subset
            opened.notes[full.name] = subset_note(f"BSDS500 {bsds_split}, every human annotation", len(subset),
                                                  full.present)
    if voc_images:
        voc = opened.requested("voc2012", "PASCAL VOC 2012", f"voc_images={voc_images}", missing,
                               root=data_root, ground_truth=voc_ground_truth, void=voc_void)
        if voc is not None:
            subset = voc[: voc_images] if voc_images > 0 else voc[:]
            opened.sets[voc.name] = subset
            void = "not counted" if voc_void == "drop" else "kept as a segment"
            opened.notes[voc.name] = (f"PASCAL VOC 2012: {len(subset)} of the study's 150 val images "
                                      f"(lib/data/voc2012_val150.txt), {voc_ground_truth} PNGs, void border {void}")
    return opened.require_some("synthetic_images, bsds_images and voc_images are all 0") if require else opened


#: images in the full lesion datasets, to say when a copy is a subset; the parameter that asks for each
LESION_DATASETS = {"ph2": ("PH2", 200, "ph2_images"), "lung_ct": ("Kaggle lung CT 2D", 267, "lung_images")}


def lesion_sets(*, synthetic_images: int, synthetic_size: Sequence[int], data_root: str | None = None,
                missing: str = "fail", require: bool = True, **counts: int) -> Opened:
    """S3-Net's image sets and their caption notes: built-in synthetic lesions, and each lesion
    dataset of ``counts`` (``ph2=N``, ``lung_ct=N``: the first N by id, -1 for all, 0 for none)
    from the data root; ``missing`` says what an absent one does (see the module); ``require``
    as in :func:`evaluation_sets`."""
    opened = Opened()
    if synthetic_images:
        opened.built_in("synthetic_lesions", synthetic_images, synthetic_size, "lesion images with exact masks")
    for name, count in counts.items():
        if not count:
            continue
        what, official, parameter = LESION_DATASETS[name]
        full = opened.requested(name, what, f"{parameter}={count}", missing, root=data_root)
        if full is not None:
            opened.sets[name] = full[:count] if count > 0 else full[:]
            opened.notes[name] = subset_note(what, len(opened.sets[name]), len(full), official)
    return opened.require_some("synthetic_images and every lesion dataset count are 0") if require else opened


def _first(items: Sequence[Sample] | Any, count: int) -> list[Sample]:
    return list(items[:count]) if count > 0 else list(items[:])


def pet_sets(*, synthetic_images: int, synthetic_size: Sequence[int], animal_images: int, pet_images: int,
             animal_classes: Sequence[str] | None = None, data_root: str | None = None,
             missing: str = "fail") -> Opened:
    """JigsawGAN's image sets, by experiment and part, and their caption notes.

    - built in (``synthetic_images`` > 0): ``synthetic_pets/pretrain`` (unlabelled, for the GAN),
      ``synthetic_pets/train`` and ``synthetic_pets/val`` (80 / 20) and ``synthetic_pets/test``,
      each generated from its own seed with exact three-class masks;
    - real: ``animals90/pretrain`` (``animal_images`` of Animals-90: the first N by id, -1 for
      all) and ``oxford_pet/train``, ``/val`` (the report's 80 / 20 split of trainval, from the
      repository's split file) and ``/test`` (the official test list), the first ``pet_images``
      of each part (-1: all). The real experiment needs both datasets.
    """
    opened = Opened()
    if synthetic_images:
        size = tuple(synthetic_size)
        for part, seed, n in (("pretrain", 3, synthetic_images), ("labelled", 1, synthetic_images),
                              ("test", 2, max(1, synthetic_images // 2))):
            ds = list(data.load("synthetic_pets", n=n, size=size, seed=seed))
            if part == "labelled":
                cut = int(round(0.8 * n))
                opened.sets["synthetic_pets/train"], opened.sets["synthetic_pets/val"] = ds[:cut], ds[cut:]
            else:
                opened.sets[f"synthetic_pets/{part}"] = ds
        opened.notes["synthetic_pets"] = (
            f"built-in pet-like images ({size[0]}x{size[1]}, exact pet / background / border masks): "
            f"{synthetic_images} unlabelled for pre-training, {len(opened.sets['synthetic_pets/train'])} train / "
            f"{len(opened.sets['synthetic_pets/val'])} val / {len(opened.sets['synthetic_pets/test'])} test")
    if animal_images and pet_images:
        animals = opened.requested("animals90", "Animals-90", f"animal_images={animal_images}", missing,
                                   root=data_root, classes=animal_classes)
        pets = {part: opened.requested("oxford_pet", f"Oxford-IIIT Pet {part}", f"pet_images={pet_images}", missing,
                                       root=data_root, split=part) for part in ("train", "val", "test")}
        if animals is not None and all(p is not None for p in pets.values()):
            opened.sets["animals90/pretrain"] = _first(animals, animal_images)
            for part, ds in pets.items():
                opened.sets[f"oxford_pet/{part}"] = _first(ds, pet_images)
            n_classes = len({s.meta.get("class") for s in opened.sets["animals90/pretrain"]})
            counts = " / ".join(f"{len(opened.sets[f'oxford_pet/{p}'])} {p}" for p in pets)
            opened.notes["animals90"] = subset_note(f"Animals-90 (classes: {n_classes}) for pre-training",
                                                    len(opened.sets["animals90/pretrain"]), len(animals), 5400)
            opened.notes["oxford_pet"] = (f"Oxford-IIIT Pet trimaps: {counts} images (train / val: the report's "
                                          "80/20 split of trainval, lib/data/oxford_pet_trainval_split.txt; test: "
                                          "the official list; the full dataset has 3680 trainval / 3669 test)")
    elif animal_images or pet_images:
        raise ParameterError(f"animal_images={animal_images}, pet_images={pet_images}: the real experiment "
                             "pre-trains on Animals-90 and fine-tunes on Oxford-IIIT Pet; set both, or both to 0")
    return opened.require_some("synthetic_images, animal_images and pet_images are all 0")


#: splits up to this many images are read into memory once; larger ones are read per batch
IN_MEMORY = 2000
#: SegGAN's real datasets: (what, the parameter that asks for it, official train / test sizes)
SCENE_DATASETS = {
    "oxford_pet": ("Oxford-IIIT Pet trimaps", "pet_images", (3680, 3669)),
    "stanford_background": ("Stanford Background", "stanford_images", (600, 115)),
    "voc2012": ("PASCAL VOC 2012 (train: + SBD)", "voc_images", (10582, 1449)),
}


def scene_sets(*, synthetic_images: int, synthetic_size: Sequence[int], pet_images: int = 0,
               stanford_images: int = 0, voc_images: int = 0, data_root: str | None = None,
               missing: str = "fail") -> Opened:
    """SegGAN's labelled image sets, ``<dataset>/train`` and ``<dataset>/test``, and their notes.

    - built in (``synthetic_images`` > 0): ``synthetic_pets``, that many training images and half
      as many test images, each part generated from its own seed, exact three-class masks;
    - ``oxford_pet``: the official trainval list for training, the official test list for testing
      (three trimap classes);
    - ``stanford_background``: the study's 600 / 115 split (``stanford_background_split.txt``);
    - ``voc2012``: the 10,582 ``train_aug`` images for training, the 1,449 val images (class PNGs,
      void border not counted) for testing (SegGAN's Table I).

    Each real count takes the first N images of each part (-1: all, 0: none).
    """
    opened = Opened()
    if synthetic_images:
        size = tuple(synthetic_size)
        opened.sets["synthetic_pets/train"] = list(data.load("synthetic_pets", n=synthetic_images, size=size, seed=1))
        opened.sets["synthetic_pets/test"] = list(data.load("synthetic_pets", n=max(1, synthetic_images // 2),
                                                            size=size, seed=2))
        opened.notes["synthetic_pets"] = (
            f"built-in pet-like images ({size[0]}x{size[1]}, exact pet / background / border masks): "
            f"{synthetic_images} train / {len(opened.sets['synthetic_pets/test'])} test")
    loads = {"oxford_pet": [("train", {"split": "trainval"}), ("test", {"split": "test"})],
             "stanford_background": [("train", {"split": "train"}), ("test", {"split": "test"})],
             "voc2012": [("train", {"name": "voc2012_aug"}),
                         ("test", {"subset": None, "split": "val", "ground_truth": "class"})]}
    counts = {"oxford_pet": pet_images, "stanford_background": stanford_images, "voc2012": voc_images}
    for name, count in counts.items():
        if not count:
            continue
        what, parameter, official = SCENE_DATASETS[name]
        parts = {}
        for part, kwargs in loads[name]:
            kwargs = dict(kwargs)
            ds = opened.requested(kwargs.pop("name", name), f"{what} {part}", f"{parameter}={count}", missing,
                                  root=data_root, limit=count if count > 0 else None, **kwargs)
            if ds is None:
                break
            parts[part] = ds
        if len(parts) < 2:
            continue
        for part, ds in parts.items():  # small sets read once into memory; large ones read per batch
            opened.sets[f"{name}/{part}"] = list(ds[:]) if len(ds) <= IN_MEMORY else ds
        sizes = " / ".join(f"{len(opened.sets[f'{name}/{p}'])} {p}" for p in parts)
        full = count < 0 and tuple(len(parts[p]) for p in ("train", "test")) == official
        opened.notes[name] = f"{what}: {sizes} images" + ("" if full else f" (a subset: the full dataset has "
                                                           f"{official[0]} train / {official[1]} test)")
    return opened.require_some("synthetic_images, pet_images, stanford_images and voc_images are all 0")
