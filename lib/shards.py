"""The per-image notebooks' work cut into cluster jobs, and the cost of each table before it runs.

A paper-profile table is thousands of (configuration, seed, image) runs, each independent. The
Snakefile (``--config shards=N``) runs them as jobs of one configuration, one seed and one
shard of one image set (every N-th image of it: image i goes to shard i mod N), each writing its
per-image records into the profile's run cache (``lib/runs.py``), and then the notebook itself,
which finds every record cached and only gathers and reports. The jobs come from the notebook's
own grids (``lib/plans.py``) and parameter file, so the two cannot drift apart. A CPU grid of
cheap baselines is one job per seed and shard for all its configurations.

Records are written atomically under names unique to host and process, so jobs running at
once never corrupt each other, and a job killed half-way reruns only the images it had not
finished. A job's last act is its marker file ``results/<profile>/shards/<work key>.json`` (how
many records it computed and read), which is what Snakemake waits for. The work key
(:func:`work_key`) names what the job computes, so two notebooks that need the same
configuration on the same images share one job.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from . import paths, study
from .files import write_json


@dataclass(frozen=True)
class Job:
    """One cluster job: configuration ``config`` of grid ``grid`` (None: all of a CPU grid's),
    seed ``seed``, of image set ``images`` the part ``shard`` (1-based) of ``shards``."""

    grid: str
    config: int | None
    seed: int
    images: str
    shard: int
    shards: int

    @property
    def name(self) -> str:
        which = "all" if self.config is None else str(self.config)
        return f"{_slug(self.grid)}-{which}-seed{self.seed}-{_slug(self.images)}-{self.shard}of{self.shards}"


_NAME = re.compile(r"^[a-z0-9_]+-(all|\d+)-seed-?\d+-[a-z0-9_]+-\d+of(?P<shards>\d+)$")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def parameters(notebook: str, profile: str, **overrides: Any) -> dict[str, Any]:
    """A notebook's parameters as papermill gives them for ``profile``: the parameters cell,
    then ``notebooks/params/<notebook>/<profile>.yaml``, then ``overrides`` (None: not given),
    checked as the notebook checks them (``lib/parameters.py``): an unknown name, a value of
    another type or out of range is a ParameterError before any job runs."""
    from . import parameters

    p = {name: d.default for name, d in study.declared_parameters(notebook).items()}
    path = paths.REPO_ROOT / "notebooks" / "params" / notebook / f"{profile}.yaml"
    if not path.is_file():
        raise study.ParameterError(f"profile={profile!r}: no parameter file {path}")
    p.update(yaml.safe_load(path.read_text()) or {})
    p.update({k: v for k, v in overrides.items() if v is not None})
    parameters.check(notebook, p)
    return p


def jobs(notebook: str, p: Mapping[str, Any], shards: int) -> list[Job]:
    """Every job of ``notebook`` with parameters ``p``, its images cut into ``shards``."""
    from . import plans
    from .runs import grid_seeds

    if shards < 1:
        raise study.ParameterError(f"shards={shards}: expected an integer >= 1")
    sets = list(plans.PLANS[notebook].sets(p))  # each image set sharded on its own: see work_key
    out = []
    for grid in plans.grids(notebook, p):
        if grid.gpu:
            out += [Job(grid.name, i, seed, images, k, shards) for i, m in enumerate(grid.methods)
                    for seed in grid_seeds(m, p["seeds"]) for images in sets for k in range(1, shards + 1)]
        else:  # cheap: one job for all configurations of a seed and shard
            seeds = sorted({s for m in grid.methods for s in grid_seeds(m, p["seeds"])}, key=list(p["seeds"]).index)
            out += [Job(grid.name, None, seed, images, k, shards) for seed in seeds for images in sets
                    for k in range(1, shards + 1)]
    return out


def find(notebook: str, p: Mapping[str, Any], name: str) -> Job:
    """The job called ``name`` (as :attr:`Job.name` writes it), checked against the grids."""
    m = _NAME.match(name)
    if not m:
        raise study.ParameterError(f"job {name!r}: expected <grid>-<config|all>-seed<seed>-<images>-<shard>of<shards>")
    known = {j.name: j for j in jobs(notebook, p, int(m["shards"]))}
    if name not in known:
        raise study.ParameterError(f"job {name!r} is not one of {notebook}'s jobs with these parameters "
                                   f"({len(known)} jobs, e.g. {next(iter(known), 'none')})")
    return known[name]


def work_key(notebook: str, p: Mapping[str, Any], job: Job) -> str:
    """What a job computes, as a name: its configurations' cache keys and code, its seed, its image set
    and the parameters that choose those images, its shard, the image size and the evaluator (not
    where or in what batches it runs: that does not change which records it writes). Notebooks
    whose jobs have the same key share one job and its records: kanezaki2018_depth's grid is
    kanezaki2018's in the paper profile, and dynamicseg runs on BSDS500 what kanezaki2018 and
    dynamicseg_mu run there too."""
    return keyed_jobs(notebook, p, job.shards, [job])[0][0]


def keyed_jobs(notebook: str, p: Mapping[str, Any], shards: int,
               selected: Sequence[Job] | None = None) -> list[tuple[str, Job, Any]]:
    """(work key, job, its grid) for every job of ``notebook`` (or the ``selected`` ones), the
    grids built once. The key leaves ``keep_labels`` out: a job that keeps the label maps serves
    a notebook that does not need them too (the Snakefile prefers it)."""
    import hashlib
    import json

    from . import plans
    from .methods.base import params_key
    from .runs import record_code

    grids = {g.name: g for g in plans.grids(notebook, p)}
    plan = plans.PLANS[notebook]
    sets = plan.sets(p)
    evaluator = plan.evaluator(p)
    shared = {"evaluator": evaluator.key, "max_side": p.get("max_side")}
    keys = {}  # (grid, config) -> (its methods' cache keys and code, a readable name)
    out = []
    for job in jobs(notebook, p, shards) if selected is None else selected:
        grid = grids[job.grid]
        if (job.grid, job.config) not in keys:
            methods = grid.methods if job.config is None else (grid.methods[job.config],)
            which = _slug(grid.name) if job.config is None else _slug(methods[0].label())
            keys[job.grid, job.config] = ([(params_key(m), record_code(m, evaluator)) for m in methods], which)
        methods, which = keys[job.grid, job.config]
        what = {**shared, "methods": methods, "seed": job.seed,
                "images": [job.images, {k: p.get(k) for k in sets[job.images]}]}
        digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:10]
        images = _slug(job.images)
        out.append((f"{which}-seed{job.seed}-{images}-{job.shard}of{job.shards}-{digest}", job, grid))
    return out


def marker(results: Path, key: str) -> Path:
    """Where a finished job says so: ``<results>/shards/<work key>.json``."""
    return results / "shards" / f"{key}.json"


def run_job(notebook: str, p: Mapping[str, Any], job: Job, *, progress: bool = False) -> dict[str, Any]:
    """Run one job: its configurations and seed on its shard of the notebook's images, records
    into the run cache the notebook reads; then write its marker. Returns what the marker holds."""
    from . import plans
    from .runs import grid_seeds, run_method
    from .runtime import resolve_device

    start = time.perf_counter()
    plan = plans.PLANS[notebook]
    grid = next(g for g in plans.grids(notebook, p) if g.name == job.grid)
    opened = plan.images(p, p.get("missing_data", "fail"))
    samples = list(opened.sets.get(job.images, []))[job.shard - 1 :: job.shards]  # none when absent (skip)
    folder = paths.results_dir(p["profile"], notebook, p.get("results_dir"))
    store = folder.parent / "cache"  # as study.setup: the profile's run cache
    device = resolve_device(p["device"])
    methods = grid.methods if job.config is None else (grid.methods[job.config],)
    evaluator = plan.evaluator(p)
    computed = cached = 0
    for method in methods:
        if job.seed not in grid_seeds(method, p["seeds"]):
            continue
        records = run_method(method, samples, [job.seed], store, evaluator=evaluator,
                             max_side=p.get("max_side"), device=device, batch_size=p.get("batch_size") or None,
                             keep_labels=grid.keep_labels, progress=progress)
        computed += sum(r.computed for r in records)
        cached += sum(not r.computed for r in records)
    key = work_key(notebook, p, job)
    summary = {"notebook": notebook, "job": job.name, "key": key, "configurations": [m.label() for m in methods],
               "images": len(samples), "computed": computed, "cached": cached, "device": str(device),
               "seconds": round(time.perf_counter() - start, 3), "absent": sorted(opened.absent),
               "slurm_job": os.environ.get("SLURM_JOB_ID")}
    write_json(marker(folder.parent, key), summary)
    return summary


def claim_gpu(lock_dir: str | os.PathLike | None = None, wait: float = 3600.0) -> str | None:
    """With several GPUs on this machine, take one that no other job here holds and make it the
    only one this process sees (``CUDA_VISIBLE_DEVICES``); call before torch touches CUDA.

    Snakemake's ``--resources gpu=K`` runs at most K GPU jobs at once but does not say which
    device each may use; a lock per device (held until the process ends) does. With one GPU
    visible (one machine's single GPU, or SLURM's ``--gres=gpu:1``) it is used as it is.
    Returns the device id, or None without a GPU."""
    import fcntl
    import subprocess

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d.strip() for d in visible.split(",") if d.strip()]
    else:
        try:
            listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            listed = ""
        ids = [str(i) for i, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]
    if len(ids) <= 1:
        return ids[0] if ids else None
    folder = Path(lock_dir or Path("/tmp") / f"segstudy-gpus-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        for device in ids:
            handle = open(folder / f"gpu-{device.replace('/', '_')}.lock", "w")  # MIG ids hold '/'
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _HELD.append(handle)  # the lock lasts as long as this process
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            return device
        if time.monotonic() > deadline:
            raise RuntimeError(f"every GPU of {ids} is held by another job for {wait:.0f} s: run with "
                               f"--resources gpu={len(ids)} or fewer")
        time.sleep(1.0)


_HELD: list[Any] = []


# --------------------------------------------------------------------------------------------
# the dry run: how much work each table is, before any of it runs

#: each dataset's image count, a typical size, and the parameter that asks for the first N
OFFICIAL = {"bsds500": (200, (321, 481), "bsds_images"), "voc2012": (150, (375, 500), "voc_images"),
            "ph2": (200, (576, 768), "ph2_images"), "lung_ct": (267, (512, 512), "lung_images")}


def iteration_flops(method: Any, shapes: Sequence[Sequence[int]]) -> float:
    """FLOPs of one self-training iteration of ``method`` (forward and backward, every layer)
    on each image of ``shapes`` (H, W), summed. Counted by PyTorch's FlopCounterMode as the
    difference of runs of 2 and 1 iterations on a small image (once per configuration), scaled by
    the pixels the network sees: the image's (the networks are fully convolutional at the image's
    resolution), or a fixed square's (S3-Net's code form)."""
    per_image = _small_image_flops(method)
    if getattr(method.config, "size", None):  # the same cost for every image
        return per_image * len(shapes)
    return per_image * sum(h * w for h, w in shapes) / (_SMALL[0] * _SMALL[1])


_SMALL = (48, 64)
_FLOPS: dict[str, float] = {}  # configuration's cache key -> FLOPs of one iteration at _SMALL


def _small_image_flops(method: Any) -> float:
    from dataclasses import replace

    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .methods.base import params_key

    key = params_key(method)
    if key in _FLOPS:
        return _FLOPS[key]
    image = np.random.default_rng(0).integers(0, 256, (*_SMALL, 3), dtype=np.uint8)
    counts = []
    forced = os.environ.get("SEGSTUDY_LAYOUT")
    os.environ["SEGSTUDY_LAYOUT"] = "nchw"  # no layout probe: its trial passes are not the loop's
    try:
        for its in (1, 2):
            one = type(method)(replace(method.config, iterations=its))
            with FlopCounterMode(display=False) as counter:
                one.run([image], [(0, "flops")], torch.device("cpu"))
            counts.append(counter.get_total_flops())
    finally:
        if forced is None:
            del os.environ["SEGSTUDY_LAYOUT"]
        else:
            os.environ["SEGSTUDY_LAYOUT"] = forced
    _FLOPS[key] = counts[1] - counts[0]
    return _FLOPS[key]


def estimate(notebook: str, p: Mapping[str, Any], shards: int, tflops: float) -> list[dict[str, Any]]:
    """One row per grid of ``notebook``: configurations, jobs, images, runs, and per job (by work
    key, so that work two notebooks share counts once) its image x iterations (at most: a stop
    rule may end a run earlier) and TFLOPs; the row's sums, its accelerator hours and its longest
    job's minutes at ``tflops`` TFLOP/s sustained (an assumption, not a measurement). Datasets not
    downloaded count with the images asked for at a typical size, and the row says so."""
    from . import plans
    from .data import resize_image
    from .runs import grid_seeds

    opened = plans.PLANS[notebook].images(p, "skip", require=False)
    shapes = {name: [resize_image(s.image, p.get("max_side")).shape[:2] for s in group]
              for name, group in opened.sets.items()}
    assumed = []
    for name in opened.absent:  # not downloaded: the images asked for, at a typical size
        n, (h, w), parameter = OFFICIAL[name]
        n = min(n, p[parameter]) if p.get(parameter, -1) > 0 else n
        side = p.get("max_side")
        if side and max(h, w) > side:
            h, w = round(h * side / max(h, w)), round(w * side / max(h, w))
        shapes[next((s for s in plans.PLANS[notebook].sets(p) if s.split("/")[0] == name), name)] = [(h, w)] * n
        assumed.append(f"{name} not found: {n} images of {h}x{w} assumed")
    images = sum(len(v) for v in shapes.values())
    all_jobs = keyed_jobs(notebook, p, shards)
    rows = []
    for grid in plans.grids(notebook, p):
        costs = {}  # work key -> (image x iterations, TFLOP)
        for key, job, _ in all_jobs:
            if job.grid != grid.name:
                continue
            part = shapes.get(job.images, [])[job.shard - 1 :: job.shards]
            if not grid.gpu:
                costs[key] = (0, 0.0)
                continue
            m = grid.methods[job.config]
            costs[key] = (len(part) * m.config.iterations, m.config.iterations * iteration_flops(m, part) / 1e12)
        tflop = sum(c[1] for c in costs.values())
        rows.append({
            "notebook": notebook, "grid": grid.name, "configurations": len(grid.methods), "jobs": len(costs),
            "costs": costs, "images": images,
            "runs": sum(len(grid_seeds(m, p["seeds"])) for m in grid.methods) * images,
            "image_iterations": sum(c[0] for c in costs.values()), "tflop": tflop,
            "gpu_hours": tflop / tflops / 3600 if grid.gpu else None,
            "longest_job_minutes": max(c[1] for c in costs.values()) / tflops / 60 if grid.gpu and costs else None,
            "assumed": "; ".join(assumed)})
    return rows
