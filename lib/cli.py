"""Command line: ``python -m lib <command> ...`` (``python -m lib --help`` lists the commands).

- ``evaluate bsds500|voc2012 --pred DIR``: Kim-protocol mIoU and the BSDS region benchmarks of a folder of label maps.
- ``segment --method kanezaki2018|kim2020|dynamicseg|s3net [--form paper|code] --out DIR IMAGE...``: segment your
  own images (``--scheme fsf|scf`` for dynamicseg, ``--mu``, ``--iterations``, ``--layers``).
- ``download bsds500|oxford_pet|stanford_background|voc2012|voc2012_aug`` /
  ``verify bsds500|oxford_pet|stanford_background``: get a dataset / check a copy.
- ``benchmark``: seconds per iteration of the per-image loop (see ``lib/benchmark.py``).
- ``coursework [--size smoke|demo] [--check]``: the nbgrader course folder (``lib/coursework.py``).
- ``index [RESULTS]``: rebuild ``results/README.md`` from the notebooks' outputs.

Every command checks what it is given (files, folders, option values, the memory a segmentation
needs) before any long work starts, and names what is wrong and what to do about it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np


class CLIError(RuntimeError):
    """An error the user can fix; printed without a traceback."""


def _evaluate(args: argparse.Namespace) -> int:
    from . import data
    from .evaluation import evaluate_image
    from .files import LabelMapError, read_label_map
    from .metrics import pooled_miou, pooled_region

    pred_dir = Path(args.pred)
    if not pred_dir.is_dir():
        raise CLIError(f"--pred {pred_dir}: not a folder of label maps")
    if args.dataset == "bsds500":
        given = [f"{option} {value}" for option, value in (("--ground-truth", args.ground_truth),
                                                          ("--void", args.void)) if value is not None]
        if given:
            raise CLIError(f"{', '.join(given)}: voc2012's option(s); BSDS500 has one kind of ground truth "
                           "(every annotator's segmentation) and no void label: leave them out")
        ds = data.load("bsds500", root=args.data_root, split=args.split or "test")
    else:
        split = {"split": args.split, "subset": None} if args.split else {}
        ds = data.load("voc2012", root=args.data_root, ground_truth=args.ground_truth or "object",
                       void=args.void or "drop", **split)
    files, problems = {}, []
    for image_id in ds.ids:  # check every file name first, so all problems are reported at once
        found = [p for p in (pred_dir / f"{image_id}.png", pred_dir / f"{image_id}.npy") if p.is_file()]
        if not found:
            problems.append(f"image {image_id}: no prediction (looked for {image_id}.png and {image_id}.npy in {pred_dir})")
        elif len(found) > 1:
            problems.append(f"image {image_id}: both {found[0].name} and {found[1].name} exist; keep one")
        else:
            files[image_id] = found[0]
    if problems:
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise CLIError(f"{len(problems)} of {len(ds)} images cannot be evaluated:\n  " + "\n  ".join(problems[:10]) + more)
    scores = []
    for sample in _progress(ds, args, "evaluating"):
        path = files[sample.id]
        try:
            pred = read_label_map(path)
        except LabelMapError as exc:
            raise CLIError(f"image {sample.id}: {exc}") from exc
        if pred.shape != sample.shape:
            raise CLIError(f"image {sample.id}: prediction {path} is {pred.shape[0]}x{pred.shape[1]} (HxW) "
                           f"but the image is {sample.shape[0]}x{sample.shape[1]}; save label maps at the image's size")
        scores.append(evaluate_image(pred, sample.segmentations))
    result = pooled_miou(s.miou for s in scores)
    result.update(pooled_region(s.region for s in scores))
    result["images"] = len(scores)
    result["segments_per_image"] = float(np.mean([s.n_segments for s in scores]))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{ds.name}, {len(scores)} images")
        print("mIoU, Kim et al. protocol (4-connected segments, pooled over segments):")
        for key in ("all", "fine", "coarse", "mean"):
            print(f"  {key.capitalize():<9} {result[key]:.4f}")
        print(f"  segments per image {result['segments_per_image']:.1f}")
        print("BSDS500 region benchmarks (label maps as given):")
        print(f"  Covering  {result['covering']:.4f}\n  PRI       {result['pri']:.4f}\n  VOI       {result['voi']:.4f}  (bits, lower is better)")
    return 0


#: the paper's best mu for each DynamicSeg scheme (the default of ``segment --method dynamicseg --mu``)
DYNAMICSEG_MU = {"fsf": 15.0, "scf": 100.0}
SEGMENT_METHODS = ("kanezaki2018", "kim2020", "dynamicseg", "s3net")


def _segment_method(args: argparse.Namespace):
    """The method ``segment``'s options ask for; CLIError for an option that does not apply to it."""
    from . import methods

    name = args.method
    if args.scheme is not None and name != "dynamicseg":
        raise CLIError(f"--scheme {args.scheme}: only --method dynamicseg has a scheme"
                       + (" (kim2020's weight is the fixed --mu)" if name == "kim2020" else ""))
    if args.mu is not None and name not in ("kim2020", "dynamicseg"):
        raise CLIError(f"--mu {args.mu:g}: only --method kim2020 and dynamicseg have a continuity weight mu")
    if args.layers is not None and name == "s3net":
        raise CLIError(f"--layers {args.layers}: s3net has no M to choose (its network is fixed: two I-LKA blocks)")
    for option, value in (("--iterations", args.iterations), ("--layers", args.layers), ("--batch", args.batch)):
        if value is not None and value < 1:
            raise CLIError(f"{option} {value}: must be at least 1")
    if args.max_side is not None and args.max_side < MIN_MAX_SIDE:
        raise CLIError(f"--max-side {args.max_side}: must be at least {MIN_MAX_SIDE} (pixels on the longer side)")
    if args.mu is not None and not (math.isfinite(args.mu) and args.mu > 0):
        raise CLIError(f"--mu {args.mu:g}: the weight parameter must be a finite number > 0 (as the notebooks' "
                       "mu; lib/parameters.py)")
    form = {"form": args.form} if args.form is not None else {}  # None: the method's own default form
    if name == "kanezaki2018":
        return methods.Kanezaki2018(**form, iterations=args.iterations, n_layers=args.layers)
    if name == "kim2020":
        return methods.Kim2020(5.0 if args.mu is None else args.mu, **form, iterations=args.iterations, n_layers=args.layers)
    if name == "dynamicseg":
        if args.scheme is None:
            raise CLIError("--method dynamicseg needs --scheme: fsf (weight q'/mu, default mu 15) "
                           "or scf (weight mu/q', default mu 100)")
        mu = DYNAMICSEG_MU[args.scheme] if args.mu is None else args.mu
        return methods.DynamicSeg(args.scheme, mu, **form, iterations=args.iterations, n_layers=args.layers)
    return methods.S3Net(**form, iterations=args.iterations)


#: the fewest pixels on an image's shorter side (after ``--max-side``): the networks' batch norm
#: needs more than one pixel, and a segmentation of fewer than this says little
MIN_SIDE = 8
#: the smallest ``--max-side``, as the notebooks' max_side
MIN_MAX_SIDE = 16


def _outputs(path: Path) -> tuple[str, str]:
    """The files ``segment`` writes for the image ``path``: its label map and its overlay."""
    return f"{path.stem}.png", f"{path.stem}_overlay.png"


def _segment_shapes(args: argparse.Namespace) -> dict[Path, tuple[int, int]]:
    """Each image's ``(height, width)`` read from its file's header, without decoding it (for the
    memory estimate); CLIError for a folder or for two images that would write one output file.
    A file Pillow cannot open is left to :func:`_segment_inputs`, which says why."""
    from .memory import image_shape

    outputs = [n for name in args.images for n in _outputs(Path(name))]
    clashes = sorted({n for n in outputs if outputs.count(n) > 1})
    if clashes:
        raise CLIError(f"two images would write the same output file ({', '.join(clashes)}); rename one of them "
                       "or segment them with separate --out folders")
    shapes = {}
    for name in args.images:
        path = Path(name)
        if path.is_dir():
            raise CLIError(f"{path} is a folder; segment takes image files: give them, e.g. {path}/*.jpg")
        shape = image_shape(path)
        if shape is not None:
            shapes[path] = shape
    return shapes


def _check_memory(method, shapes: dict[Path, tuple[int, int]], args: argparse.Namespace, device) -> None:
    """CLIError when the images would not fit in the memory available (``lib/memory.py``)."""
    from .memory import shortage

    problem = shortage(method, shapes, args.max_side, args.batch, device, MIN_MAX_SIDE)
    if problem:
        raise CLIError(f"not enough memory: {problem}")


def _segment_inputs(args: argparse.Namespace) -> tuple[dict[Path, np.ndarray], dict[Path, np.ndarray]]:
    """Every image file read (at its size) and shrunk for the network; CLIError names a bad one."""
    from . import files
    from .data import resize_image

    originals, images = {}, {}
    for name in args.images:
        path = Path(name)
        try:
            originals[path], note = files.read_image(path)
        except files.ImageFileError as exc:
            raise CLIError(f"{exc}; segment reads the image files Pillow opens (PNG, JPEG, TIFF, BMP, ...)") from None
        if note:
            print(note)
        images[path] = resize_image(originals[path], args.max_side)
        (h, w), shrunk = images[path].shape[:2], images[path].shape != originals[path].shape
        if min(h, w) < MIN_SIDE:
            raise CLIError(f"{path}: {h}x{w} pixels (HxW){' after --max-side' if shrunk else ''}; segment needs "
                           f"at least {MIN_SIDE} on its shorter side" + (": raise --max-side" if shrunk else ""))
    return originals, images


def _check_output_folder(out: Path, images: Sequence[Path]) -> None:
    """``--out`` can take the outputs of ``images``: it is a folder (or not there yet), and no output
    name in it is taken by something that is not a file (a folder ``<stem>.png``), which would
    only fail once the image has been optimised. Nothing is created."""
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: exists and is not a folder; give a folder path")
    for path in images:
        for name, what in zip(_outputs(path), ("label map", "overlay")):
            target = out / name
            if target.exists() and not target.is_file():
                kind = "a folder" if target.is_dir() else "not a regular file"
                raise CLIError(f"--out {out}: {target} is {kind}, where segment would write the {what} of "
                               f"{path}; move or rename it, or give another --out")


def _output_folder(out: Path) -> Path:
    """``--out``, created and checked to be writable before any optimisation starts."""
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: exists and is not a folder; give a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise CLIError(f"--out {out}: cannot write there ({exc.strerror or exc}); give a folder you can write to") from None
    return out


def _segment(args: argparse.Namespace) -> int:
    """Check everything (options, image files and sizes, memory, --out), then segment; Ctrl-C
    ends it with one line saying which images were written (exit code 130, as a shell reports it)."""
    written: list[Path] = []
    try:
        return _segment_all(args, written)
    except KeyboardInterrupt:
        out = Path(args.out)
        done = (f"{len(written)} of {len(args.images)} images written to {out} ("
                + ", ".join(str(out / _outputs(p)[0]) for p in written) + ", each with its overlay)"
                if written else f"no image written to {out}")
        rest = [str(p) for p in map(Path, args.images) if p not in written]
        print(f"interrupted (Ctrl-C): {done}; not finished: {', '.join(rest)}", file=sys.stderr)
        return 130


def _segment_all(args: argparse.Namespace, written: list[Path]) -> int:
    """:func:`_segment`'s work; appends each image to ``written`` once both its files are."""
    from .files import save_image, save_label_map
    from .metrics.segments import upsample_labels
    from .overlays import boundaries_overlay
    from .runtime import resolve_device, tune_cpu_allocator

    method = _segment_method(args)
    device = resolve_device(args.device)
    shapes = _segment_shapes(args)
    out = Path(args.out)
    _check_output_folder(out, [Path(name) for name in args.images])
    _check_memory(method, shapes, args, device)  # before any image is decoded
    originals, images = _segment_inputs(args)  # all read before anything is written
    out = _output_folder(out)
    if device.type == "cpu":
        tune_cpu_allocator()  # as the runner does: only the speed changes
    by_shape: dict[tuple, list[Path]] = {}
    for path, im in images.items():
        by_shape.setdefault(im.shape, []).append(path)
    for paths in by_shape.values():
        for start in range(0, len(paths), args.batch):
            chunk = paths[start : start + args.batch]
            outputs = method.run([images[p] for p in chunk], [(args.seed, p.name) for p in chunk], device,
                                 progress=not args.quiet)
            for p, o in zip(chunk, outputs):
                # back to the image file's size (nearest neighbour): after --max-side, and for s3net's
                # code form, whose labels come at its 256 x 256 input size
                labels = upsample_labels(o.labels, originals[p].shape[:2])
                label_file, overlay_file = (out / name for name in _outputs(p))
                save_label_map(label_file, labels)  # each file written atomically (lib/files.py)
                save_image(overlay_file, boundaries_overlay(originals[p], labels))
                written.append(p)
                print(f"{p} -> {label_file}: {len(np.unique(labels))} labels after {o.iterations} "
                      f"iterations ({method.label()})")
    return 0


def _download(args: argparse.Namespace) -> int:
    from .data import bsds500, oxford_pet, stanford_background, voc2012, voc2012_aug

    if args.sha256 is not None and args.dataset != "stanford_background":
        raise CLIError(f"--sha256: only stanford_background's archive is checked against a digest you give "
                       f"({args.dataset} is checked by its own)")
    if args.dataset == "bsds500":
        target = bsds500.download(args.data_root, progress=not args.quiet)
    elif args.dataset == "oxford_pet":
        target = oxford_pet.download(args.data_root)
        # torchvision downloads nothing when the folders exist, however broken the copy in them
        problems = oxford_pet.verify(args.data_root)
        if problems:
            _problems(problems, _fix(args.dataset, args.data_root))
            return 1
    elif args.dataset == "stanford_background":
        # the digest's form is checked before the download starts (lib/data/stanford_background.py)
        target = stanford_background.download(args.data_root, sha256=args.sha256 or stanford_background.ARCHIVE_SHA256,
                                              progress=not args.quiet)
    elif args.dataset == "voc2012_aug":
        target = voc2012_aug.download(args.data_root)
    else:
        target = voc2012.download(args.data_root)
    print(f"{args.dataset} ready in {target}")
    return 0


def _fix(dataset: str, root) -> str:
    """What to run about a broken copy of ``dataset``."""
    from .paths import data_root

    command = f"python -m lib download {dataset} --data-root {data_root(root)}"
    if dataset == "oxford_pet":
        return (f"move the copy aside (torchvision downloads nothing while its folders exist), then run: "
                f"{command}")
    return f"fix them with: {command}"


def _problems(problems: Sequence[str], fix: str) -> None:
    """The first 20 problems, how many in all, and the fix."""
    print("\n".join(problems[:20]) + (f"\n... {len(problems) - 20} more" if len(problems) > 20 else ""))
    print(f"{len(problems)} problem(s); {fix}")


def _verify(args: argparse.Namespace) -> int:
    from .data import bsds500, oxford_pet, stanford_background
    from .paths import data_root

    modules = {"bsds500": bsds500, "oxford_pet": oxford_pet, "stanford_background": stanford_background}
    problems = modules[args.dataset].verify(args.data_root)
    if problems:
        _problems(problems, _fix(args.dataset, args.data_root))
        return 1
    root = data_root(args.data_root)
    if args.dataset == "stanford_background":
        print(f"Stanford Background under {root}: all 715 images of the split file and their region labels "
              "read")
    elif args.dataset == "oxford_pet":
        counts = {name: len(ids) for name, ids in oxford_pet.listed(args.data_root).items()}
        print(f"Oxford-IIIT Pet under {root}: {counts['trainval.txt']} trainval and {counts['test.txt']} "
              "test images of the list files read, each with its trimap")
    else:
        print(f"BSDS500 under {root / 'bsds500'}: all {len(bsds500.manifest())} train/test files match the "
              "manifest")
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from .benchmark import main as bench

    return bench(args)


def _coursework(args: argparse.Namespace) -> int:
    from .coursework import CourseworkError, build

    try:
        build(args.course, size=args.size, only=args.only, check=args.check)
    except CourseworkError as exc:
        raise CLIError(str(exc)) from exc
    print(f"course folder: {Path(args.course).resolve()} (teacher's guide: README.md there)")
    return 0


def _index(args: argparse.Namespace) -> int:
    from .report import write_index

    print(f"wrote {write_index(args.results)}")
    return 0


def _yaml_problem(exc: Exception) -> str:
    """What YAML found wrong, and where (line and column, counted from 1) when it says."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(exc, "context", None)
    return f"{getattr(exc, 'problem', None) or exc}{where}" + (f" ({context})" if context else "")


def _given(args: argparse.Namespace) -> dict:
    """The ``-p NAME VALUE`` parameters, each value read as YAML: 3 -> int, [0] -> list; a value
    that is not YAML is a CLIError naming it (``notebook`` and ``shard`` alike)."""
    import yaml

    given = {}
    for name, value in args.parameter:
        try:
            given[name] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise CLIError(f"-p {name} {value!r}: the value is not valid YAML: {_yaml_problem(exc)}; write "
                           "it as in the notebook's parameter file, e.g. -p seeds '[0, 1]', -p max_side 64, "
                           "-p device cuda") from None
    return given


def _overrides(args: argparse.Namespace) -> dict:
    """Parameters given on the command line, as papermill would give them to the notebook."""
    return {**_given(args), "data_root": args.data_root, "results_dir": args.results_dir, "device": args.device}


def _per_image_notebook(notebook: str, command: str) -> None:
    """CLIError unless ``notebook`` is one of the per-image notebooks ``plan`` and ``shard`` cut
    into jobs (``lib.plans.PLANS``); a dataset-level notebook is run whole."""
    from .paths import REPO_ROOT
    from .plans import PLANS

    if notebook in PLANS:
        return
    whole = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("*.ipynb") if p.stem not in PLANS)
    covers = (f"{command} covers the per-image notebooks, whose runs are cut into jobs of images: "
              f"{', '.join(PLANS)}")
    run = (f"run it whole: python -m lib notebook notebooks/{notebook}.ipynb OUT.ipynb -f "
           f"notebooks/params/{notebook}/<profile>.yaml (or every notebook: make results)")
    if notebook in whole:
        raise CLIError(f"{command} {notebook}: {covers}. {notebook} is a dataset-level notebook (as are "
                       f"{', '.join(n for n in whole if n != notebook)}): it trains on whole datasets, so "
                       f"there are no per-image jobs to {command}; {run}")
    raise CLIError(f"{command} {notebook}: unknown notebook {notebook!r}; {covers} (dataset-level notebooks, "
                   f"run whole with python -m lib notebook or make results: {', '.join(whole)})")


def _shard(args: argparse.Namespace) -> int:
    from . import shards

    _per_image_notebook(args.notebook, "shard")
    overrides = _overrides(args)  # a bad -p value is named before a GPU is claimed
    device = shards.claim_gpu() if args.claim_gpu else None  # before torch sees CUDA
    p = shards.parameters(args.notebook, args.profile, **overrides)
    job = shards.find(args.notebook, p, args.job)
    done = shards.run_job(args.notebook, p, job, progress=not args.quiet)
    gpu = f" on GPU {device}" if device is not None else ""
    print(f"{args.notebook} {done['job']}: {done['images']} images, {done['computed']} records computed, "
          f"{done['cached']} read from the cache{gpu}, {done['seconds']:.1f} s")
    return 0


def _notebook_inputs(args: argparse.Namespace) -> dict:
    """The input notebook, the ``-f`` file and the ``-p`` values checked before a kernel starts;
    returns the ``-p`` parameters."""
    import yaml

    source = Path(args.input)
    if source.is_dir():
        raise CLIError(f"{source} is a folder; give the notebook to run, e.g. notebooks/kanezaki2018.ipynb")
    if not source.is_file():
        raise CLIError(f"{source}: no such notebook; give the path of the .ipynb to run "
                       "(the study's are in notebooks/)")
    if args.parameters_file is not None:
        path = Path(args.parameters_file)
        if not path.is_file():
            raise CLIError(f"-f {path}: no such file; give a YAML file of parameters, e.g. "
                           "notebooks/params/<notebook>/<profile>.yaml")
        try:
            values = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise CLIError(f"-f {path}: not valid YAML: {_yaml_problem(exc)}; fix the file (one "
                           "'name: value' per line)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CLIError(f"-f {path}: cannot be read ({exc})") from None
        if values is not None and not isinstance(values, dict):
            kind = {"list": "a list", "str": "a string"}.get(type(values).__name__, "a single value")
            raise CLIError(f"-f {path}: holds {kind}, not parameters; write one 'name: value' per line")
    return _given(args)


def _study_parameters(args: argparse.Namespace, given: dict) -> None:
    """For one of the study's notebooks, its parameters as the kernel will get them (the
    parameters cell, then ``-f``, then ``-p``) checked as the notebook checks them
    (``lib/parameters.py``), before a kernel starts: an unknown name, a wrong type or a value out
    of range is named at once instead of after the kernel's start-up."""
    import yaml

    from . import parameters, study
    from .paths import REPO_ROOT

    source = Path(args.input).resolve()
    if source != (REPO_ROOT / "notebooks" / source.name).resolve() or not source.name.endswith(".ipynb"):
        return  # not one of the study's notebooks: its own code checks what it gets
    declared = study.declared_parameters(source.stem)
    values = {name: d.default for name, d in declared.items()}
    if args.parameters_file is not None:
        values.update(yaml.safe_load(Path(args.parameters_file).read_text()) or {})
    values.update(given)
    parameters.check(source.stem, values, declared)


def _notebook(args: argparse.Namespace) -> int:
    from .kernels import execute_notebook
    from .shards import claim_gpu

    parameters = _notebook_inputs(args)
    _study_parameters(args, parameters)
    if args.claim_gpu:
        claim_gpu()  # the kernel inherits CUDA_VISIBLE_DEVICES
    execute_notebook(args.input, args.output, parameters=parameters, parameters_file=args.parameters_file,
                     cwd=args.cwd, kernel_name=args.kernel, log_output=args.log_output)
    return 0


def _plan(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import plans, shards

    if not (math.isfinite(args.tflops) and args.tflops > 0):
        raise CLIError(f"--tflops {args.tflops:g}: the assumed sustained TFLOP/s of one GPU must be a "
                       "positive number (e.g. 25)")
    if args.shards < 1:
        raise CLIError(f"--shards {args.shards}: a configuration and seed's images are cut into at least "
                       "1 shard")
    for notebook in args.notebooks:
        _per_image_notebook(notebook, "plan")
    rows, unique = [], {}
    for notebook in args.notebooks or list(plans.PLANS):
        p = shards.parameters(notebook, args.profile, data_root=args.data_root)
        for row in shards.estimate(notebook, p, args.shards, args.tflops):
            costs = row.pop("costs")
            row["shared"] = sum(k in unique for k in costs)  # an earlier notebook's work: one job
            unique.update({k: v for k, v in costs.items() if k not in unique})
            rows.append(row)
    table = pd.DataFrame(rows)
    totals = pd.Series({"jobs": len(unique), "image_iterations": sum(c[0] for c in unique.values()),
                        "tflop": sum(c[1] for c in unique.values())})
    totals["gpu_hours"] = totals.tflop / args.tflops / 3600
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:,.1f}".format):
        print(table.drop(columns="assumed").to_string(index=False))
    for notebook, note in table.groupby("notebook", sort=False).assumed.first().items():
        if note:
            print(f"{notebook}: {note}")
    print(f"in all (shared jobs once): {int(totals.jobs):,} jobs, {int(totals.image_iterations):,} image x "
          f"iterations at most, "
          f"{totals.tflop:,.0f} TFLOP, about {totals.gpu_hours:,.1f} GPU-hours at {args.tflops:g} TFLOP/s sustained "
          f"(an assumed rate, not a measurement; a stop rule may end runs earlier); the longest job about "
          f"{table.longest_job_minutes.max():,.1f} GPU-minutes. The CPU baselines' jobs need no GPU.")
    return 0


def _progress(items, args, desc):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=getattr(args, "quiet", False) or getattr(args, "json", False))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("evaluate", help="score a folder of label maps: Kim et al. BSDS500 mIoU, Covering, PRI, VOI")
    e.add_argument("dataset", choices=["bsds500", "voc2012"])
    e.add_argument("--pred", required=True, help="folder of <image id>.png (8/16-bit, one channel) or <image id>.npy label maps")
    e.add_argument("--split", default=None, help="bsds500: train, val or test (default test); voc2012: a split list "
                   "instead of the default 150 val images")
    e.add_argument("--ground-truth", default=None, choices=["object", "class"],
                   help="voc2012 only: which PNGs (default object)")
    e.add_argument("--void", default=None, choices=["drop", "keep"],
                   help="voc2012 only: the 255 border does not count / is a segment (default drop)")
    e.add_argument("--data-root", default=None, help="folder holding bsds500/ (default: $SEGSTUDY_DATA_ROOT or data/)")
    e.add_argument("--json", action="store_true", help="print a JSON object: all, fine, coarse, mean, covering, pri, voi, images, segments_per_image")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_evaluate)

    s = sub.add_parser("segment", help="segment your own images; writes <stem>.png 16-bit label maps and overlays",
                       description="Segment image files with one of the study's methods. Writes <stem>.png (a 16-bit "
                       "label map at the image's size) and <stem>_overlay.png per image, one line each.")
    s.add_argument("--method", default="kanezaki2018", choices=SEGMENT_METHODS,
                   help="kanezaki2018 (Kanezaki 2018), kim2020 (Kim et al. 2020, fixed weight mu), "
                   "dynamicseg (Kim's loss with a weight that follows q', needs --scheme) or s3net (S3-Net)")
    s.add_argument("--form", default=None, choices=["paper", "code"],
                   help="the paper's form or the authors' code's (default: kanezaki2018 paper, kim2020 and "
                   "dynamicseg code, s3net paper; s3net's code form runs at 256 x 256)")
    s.add_argument("--iterations", type=int, default=None,
                   help="T or the cap (default: kanezaki2018 500 paper, at most 1000 code; kim2020 and dynamicseg "
                   "1000 paper, at most 1000 code; s3net at most 50)")
    s.add_argument("--layers", type=int, default=None,
                   help="M conv components (default: 2 kanezaki2018, 3 kim2020 and dynamicseg; not for s3net)")
    s.add_argument("--mu", type=float, default=None,
                   help="continuity weight parameter: kim2020 the weight (default 5); dynamicseg fsf q'/mu "
                   "(default 15, the paper's best of 10 and 15), scf mu/q' (default 100, best of 50 and 100)")
    s.add_argument("--scheme", default=None, choices=["fsf", "scf"],
                   help="dynamicseg only (required there): fsf, weight q'/mu, or scf, weight mu/q'")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="auto, cpu or cuda")
    s.add_argument("--max-side", type=int, default=None, help="shrink images so the longer side is at most this "
                   "(the label maps are still written at the image's size, nearest neighbour)")
    s.add_argument("--batch", type=int, default=1, help="images of one size optimised together (use >1 on a GPU)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("images", nargs="+", help="image files")
    s.set_defaults(func=_segment)

    d = sub.add_parser("download", help="download and verify a dataset")
    d.add_argument("dataset", choices=["bsds500", "oxford_pet", "stanford_background", "voc2012", "voc2012_aug"])
    d.add_argument("--data-root", default=None)
    d.add_argument("--sha256", default=None, help="stanford_background: the archive's expected SHA-256")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_download)

    v = sub.add_parser("verify", help="check a dataset copy (BSDS500: against its SHA-256 manifest; "
                       "Oxford-IIIT Pet and Stanford Background: every listed image and its labels read)")
    v.add_argument("dataset", choices=["bsds500", "oxford_pet", "stanford_background"])
    v.add_argument("--data-root", default=None)
    v.set_defaults(func=_verify)

    b = sub.add_parser("benchmark", help="seconds per iteration of a per-image loop on one BSDS-sized image, and batch throughput")
    b.add_argument("--device", default="auto")
    b.add_argument("--iterations", type=int, default=5, help="timed iterations (after one warm-up)")
    b.add_argument("--batch", type=int, default=0, help="images in the batch measurement (0: 2 on CPU, 16 on CUDA)")
    b.add_argument("--method", default="kanezaki2018", choices=["kanezaki2018", "kim2020", "s3net", "s3net-code",
                   "jigsawgan", "seggan"], help="the loop to time (lib/benchmark.py LOOPS); jigsawgan: images/s of its "
                   "pre-training and fine-tuning, the study's loops and a reference written like the authors' code; "
                   "seggan: iterations/s of its two stages and the DeepLab baseline (lib/benchmark_seggan.py)")
    b.add_argument("--layers", type=int, default=None, help="M (default: 2 for kanezaki2018, 3 for kim2020)")
    b.add_argument("--estimate", type=int, nargs=2, metavar=("IMAGES", "ITERATIONS"), default=None,
                   help="also estimate the wall time of IMAGES x ITERATIONS at the measured throughput")
    b.add_argument("--reference", action="store_true", help="also time a loop written step for step like the "
                   "authors' demo.py")
    b.add_argument("--authors-demo", default=None, metavar="DEMO_PY",
                   help="also time the published demo.py itself (a copy of kanezaki/pytorch-unsupervised-segmentation"
                   " @478e67e), unchanged, on the same image")
    b.add_argument("--batches", type=int, default=2, help="jigsawgan: timed batches of 16 per loop, after one warm-up "
                   "(2: about 40 s on 2 CPU cores; more for steadier numbers)")
    b.add_argument("--images", type=int, default=64, help="jigsawgan: images in the benchmark set (kept in memory "
                   "by the study, written to JPEG files for the reference)")
    b.add_argument("--data-root", default=None, help="to take a real BSDS500 image (jigsawgan: Animals-90, "
                   "Oxford-IIIT Pet) when present")
    b.add_argument("--backbone", default="resnet101", help="seggan: DeepLabV3's backbone")
    b.add_argument("--crop", type=int, default=240, help="seggan: training crop side (a multiple of 16)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_benchmark)

    j = sub.add_parser("shard", help="run one cluster job of a per-image notebook: a configuration, a seed and a "
                       "shard of its images (lib/shards.py; the Snakefile's shard rule)")
    j.add_argument("notebook", help="a per-image notebook: kanezaki2018, kanezaki2018_depth, dynamicseg, "
                   "dynamicseg_mu, s3net, s3net_losses")
    j.add_argument("--profile", required=True, choices=["smoke", "demo", "paper"])
    j.add_argument("--job", required=True, help="the job's name, <grid>-<config|all>-seed<seed>-<images>-<shard>of<shards>")
    j.add_argument("--data-root", default=None)
    j.add_argument("--results-dir", default=None, help="the notebook's results folder (its run cache is beside it)")
    j.add_argument("--device", default=None, help="as the notebook's device parameter (default: the profile's)")
    j.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a notebook parameter over the profile's, its value read as YAML")
    j.add_argument("--claim-gpu", action="store_true", help="with several GPUs visible, take one no other job of "
                   "this machine holds (a lock per device) and see only that one")
    j.add_argument("--quiet", action="store_true")
    j.set_defaults(func=_shard)

    r = sub.add_parser("notebook", help="run a notebook with papermill, its kernel on private Unix sockets (no port "
                       "race between kernels started at once), the output written only when every cell has run")
    r.add_argument("input")
    r.add_argument("output")
    r.add_argument("-f", "--parameters-file", default=None, help="a YAML file of parameters (a profile)")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="one parameter, its value read as YAML; overrides the file")
    r.add_argument("-k", "--kernel", default="python3")
    r.add_argument("--cwd", default=None, help="the kernel's working folder")
    r.add_argument("--log-output", action="store_true", help="stream the cells' output to this process's")
    r.add_argument("--claim-gpu", action="store_true", help="as for shard: the kernel sees one GPU of its own")
    r.set_defaults(func=_notebook)

    n = sub.add_parser("plan", help="the dry run: jobs, image x iterations and estimated GPU-hours of each "
                       "per-image notebook's grids in a profile")
    n.add_argument("notebooks", nargs="*", help="per-image notebooks (default: all)")
    n.add_argument("--profile", default="paper", choices=["smoke", "demo", "paper"])
    n.add_argument("--shards", type=int, default=8, help="image shards per configuration and seed")
    n.add_argument("--tflops", type=float, default=25.0, help="assumed sustained TFLOP/s of one GPU")
    n.add_argument("--data-root", default=None)
    n.set_defaults(func=_plan)

    c = sub.add_parser("coursework", help="build the nbgrader course folder from notebooks/coursework/ "
                       "(lib/coursework.py): source/ with solutions, release/ with stubs, README.md")
    c.add_argument("--course", default="course", help="the course folder (default: ./course)")
    c.add_argument("--size", default="demo", choices=["smoke", "demo"], help="the runs on real images: demo "
                   "(a few minutes each on a laptop) or smoke (seconds, for the tests)")
    c.add_argument("--only", nargs="+", default=None, metavar="NAME", help="these assignments only")
    c.add_argument("--check", action="store_true", help="run every solution top to bottom; its time goes "
                   "into the guide")
    c.set_defaults(func=_coursework)

    i = sub.add_parser("index", help="rebuild results/README.md")
    i.add_argument("results", nargs="?", default="results")
    i.set_defaults(func=_index)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # before any heavy import: --help answers at once
    from .data.base import DatasetError

    try:
        return args.func(args)
    except (CLIError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
