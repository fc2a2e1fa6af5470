"""The workflow on a real (throwaway, one-node) SLURM cluster: the smoke profile of two per-image
notebooks, their work sharded into jobs submitted through sbatch, gives the tables of a local,
unsharded run, and the notebooks only gather what the jobs computed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from slurm_cluster import slurm_cluster  # noqa: F401

NOTEBOOKS = ["kanezaki2018_depth", "s3net"]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def _workdir(path: Path) -> Path:
    """A working folder of the workflow: the repository's notebooks, results of its own."""
    path.mkdir()
    (path / "notebooks").symlink_to(REPO / "notebooks")
    return path


def _snakemake(workdir: Path, env: dict, *options: str) -> None:
    targets = [f"results/smoke/{nb}/{nb}.ipynb" for nb in NOTEBOOKS]
    config = workdir / "config.yaml"  # one seed: half the jobs, the same paths through the workflow
    config.write_text("profile: smoke\nparameters:\n  seeds: [0]\n")
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(config),
           *options, "--", *targets]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    logs = "".join(f"\n--- {p}\n{p.read_text()[-2000:]}" for p in sorted(workdir.rglob("*.log"))[-4:])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:] + logs


def _tables(results: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for path in sorted(results.glob("*/*.csv")):
        df = pd.read_csv(path)
        tables[str(path.relative_to(results))] = df.drop(columns=[c for c in df if "seconds" in c])
    return tables


@pytest.mark.slurm
def test_smoke_profile_sharded_through_slurm_equals_the_local_run(slurm_cluster, tmp_path):  # noqa: F811
    # identical numbers on CPU need the same kernels: one thread and one memory layout in both runs
    env = {**slurm_cluster.env, "SEGSTUDY_LAYOUT": "nchw", "PYTHONPATH": str(REPO)}
    local = _workdir(tmp_path / "local")
    _snakemake(local, env, "--cores", "1")

    cluster = _workdir(tmp_path / "slurm")
    _snakemake(cluster, env, "--executor", "slurm", "--jobs", "4", "--config", "shards=2",
               "--slurm-no-account", "--slurm-status-command", "squeue",  # no accounting database here
               "--slurm-init-seconds-before-status-checks", "2", "--set-threads", "notebook=1",
               "--default-resources", f"slurm_partition={slurm_cluster.partition}")

    markers = sorted((cluster / "results" / "smoke" / "shards").glob("*.json"))
    assert len(markers) == 8 + 6  # kanezaki2018_depth: 2 forms x 2 M x 2 shards; s3net: 2 forms x 2 + baselines x 2
    done = [json.loads(m.read_text()) for m in markers]
    assert all(d["slurm_job"] for d in done), done  # each ran inside a SLURM job
    records = list((cluster / "results" / "smoke" / "cache").rglob("*.npz"))
    assert sum(d["computed"] for d in done) == len(records)  # the notebooks computed none themselves

    ours, theirs = _tables(cluster / "results" / "smoke"), _tables(local / "results" / "smoke")
    assert ours.keys() == theirs.keys() and len(ours) >= 3
    for name in ours:
        pd.testing.assert_frame_equal(ours[name], theirs[name], obj=name)
