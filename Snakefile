# Runs every notebook of one profile with papermill, then indexes the results.
#   snakemake --cores all --config profile=demo                        (what `make results` does)
#   snakemake --cores all --config profile=paper data_root=/data --resources gpu=1
#   snakemake --cores all --config profile=paper data_root=/data shards=8 --resources gpu=4
#   snakemake --workflow-profile profiles/slurm --config profile=paper data_root=/data shards=8
# `--configfile` may also hold `parameters:`, notebook parameters that override every profile
# file's (e.g. seeds: [0] for a first pass), given to the jobs and to papermill alike.
# With shards=N, each per-image notebook's work runs first as jobs of one configuration, one seed
# and one N-th of one image set (lib/shards.py), built from the notebook's own grids and parameter
# file (lib/plans.py); the notebook then finds every record in the run cache and only reports.
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

import yaml

from lib import plans, shards, study

PROFILE = config.get("profile", "demo")
DATA_ROOT = str(Path(config["data_root"]).resolve()) if config.get("data_root") else ""
SHARDS = int(config.get("shards", 0))  # 0: each notebook is one job
NOTEBOOKS = sorted(p.stem for p in Path("notebooks").glob("*.ipynb"))
GPU = 1 if PROFILE == "paper" else 0
CLAIM = " --claim-gpu" if GPU else ""  # a GPU job takes a GPU no other job of this machine holds
PY = shlex.quote(sys.executable)  # the environment snakemake runs in (the study's .venv)
DATA = f"--data-root {DATA_ROOT}" if DATA_ROOT else ""
OVERRIDES = dict(config.get("parameters") or {})  # notebook parameters over the profiles'


def overrides(nb):
    """The overrides that are parameters of notebook ``nb`` (seggan has no bsds_images)."""
    return {k: v for k, v in OVERRIDES.items() if k in study.declared_parameters(nb)}


def check_parameters():
    """Every notebook's parameters as its jobs will run them, checked before any job starts
    (lib/parameters.py): an override that no notebook has, or a value out of range, stops here."""
    declared = {name for nb in NOTEBOOKS for name in study.declared_parameters(nb)}
    unknown = sorted(set(OVERRIDES) - declared)
    if unknown:
        raise WorkflowError(f"--configfile parameters: {', '.join(unknown)} is no notebook's parameter; "
                            f"the notebooks' parameters are: {', '.join(sorted(declared))}")
    for nb in NOTEBOOKS:
        try:
            shards.parameters(nb, PROFILE, data_root=DATA_ROOT or None, **overrides(nb))
        except study.ParameterError as exc:
            raise WorkflowError(f"{nb}, profile {PROFILE}: {exc}") from None


check_parameters()


def set_options(nb):
    """``-p name value`` for each override of ``nb``, each value written as YAML, as -p reads it."""
    def text(value):
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()

    return " ".join(f"-p {k} {shlex.quote(text(v))}" for k, v in overrides(nb).items())


def work(nb):
    """Notebook ``nb``'s shard jobs: work key -> (job name, its grid); none without sharding."""
    if not SHARDS or nb not in plans.PLANS:
        return {}
    p = shards.parameters(nb, PROFILE, data_root=DATA_ROOT or None, **overrides(nb))
    return {key: (job.name, grid) for key, job, grid in shards.keyed_jobs(nb, p, SHARDS)}


NEEDS = {nb: work(nb) for nb in NOTEBOOKS}  # the jobs each notebook's gathering waits for
WORK = {}  # work key -> (notebook, job name, wants a GPU, keeps label maps): one job for work that
for nb, keyed in NEEDS.items():  # notebooks share, run as one that keeps the label maps if any does
    for key, (job, grid) in keyed.items():
        if key not in WORK or (grid.keep_labels and not WORK[key][3]):
            WORK[key] = (nb, job, grid.gpu, grid.keep_labels)


def all_cores():
    """--cores, or 8 on a cluster executor, which has none (its profile's set-threads decides)."""
    try:
        return workflow.cores
    except WorkflowError:
        return 8


wildcard_constraints:
    nb="[a-z0-9_]+",
    profile="[a-z]+",
    key="[a-z0-9_-]+",


rule all:
    input:
        "results/README.md",


rule index:
    input:
        expand("results/{profile}/{nb}/{nb}.ipynb", profile=PROFILE, nb=NOTEBOOKS),
    output:
        "results/README.md",
    shell:
        f"{PY} -m lib index results"


rule shard:
    input:
        nb=lambda w: f"notebooks/{WORK[w.key][0]}.ipynb",
        params=lambda w: f"notebooks/params/{WORK[w.key][0]}/{w.profile}.yaml",
    output:
        "results/{profile}/shards/{key}.json",
    log:
        "results/{profile}/shards/{key}.log",
    threads: 2 if GPU else 1  # CPU runs: one core per job, many jobs at once
    resources:
        gpu=lambda w: GPU if WORK[w.key][2] else 0,
        runtime=lambda w: 60 if GPU and WORK[w.key][2] else 120,  # minutes: see `python -m lib plan`
        mem_mb=8000 if GPU else 2000,
    params:
        nb=lambda w: WORK[w.key][0],
        job=lambda w: WORK[w.key][1],
        set=lambda w: set_options(WORK[w.key][0]),  # a value's braces pass through params untouched
        # a job holding a gpu token takes a GPU no other job of this machine holds; the others, none
        device=lambda w: ("--claim-gpu" if WORK[w.key][2] else "--device cpu") if GPU else "",
    shell:
        f"OMP_NUM_THREADS={{threads}} {PY} -m lib shard {{params.nb}} --profile {{wildcards.profile}}"
        " --job {params.job} --results-dir $PWD/results/{wildcards.profile}/{params.nb}"
        f" {DATA} {{params.set}} {{params.device}} --quiet > {{log}} 2>&1"


rule notebook:
    input:
        nb="notebooks/{nb}.ipynb",
        params="notebooks/params/{nb}/{profile}.yaml",
        shards=lambda w: [f"results/{w.profile}/shards/{key}.json" for key in NEEDS[w.nb]],
    output:
        "results/{profile}/{nb}/{nb}.ipynb",
    log:
        "results/{profile}/{nb}/papermill.log",
    threads: min(8, all_cores()) if GPU else all_cores()  # CPU runs: one notebook at a time, all cores
    resources:
        gpu=GPU,
        runtime=1440,  # minutes; a sharded notebook only gathers
        mem_mb=64000 if GPU else 4000,
    params:
        data_root=f"-p data_root {DATA_ROOT}" if DATA_ROOT else "",
        set=lambda w: set_options(w.nb),
    shell:
        # papermill with the kernel on private Unix sockets (lib/kernels.py: notebooks started at
        # once never share a port); written under a temporary name, renamed once every cell has run
        f"OMP_NUM_THREADS={{threads}} {PY} -m lib notebook {{input.nb}} {{output}} -f {{input.params}} -k python3 --cwd notebooks"
        f"{CLAIM}"
        " -p results_dir $PWD/results/{wildcards.profile}/{wildcards.nb} {params.data_root}"
        " {params.set} > {log} 2>&1"
