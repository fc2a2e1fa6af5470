"""Per-image work cut into cluster jobs (lib/shards.py): the jobs come from the notebooks' own
grids, shards run at once give the unsharded table, a killed job reruns only what it had not
finished, GPUs are handed out one per job, and the dry run counts the work."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from conftest import REPO, shared_datasets
from lib import plans, shards
from lib.methods import Kanezaki2018
from lib.runs import run_grid
from lib.study import ParameterError


def _params(notebook, tmp_path, **extra):
    return shards.parameters(notebook, "smoke", results_dir=str(tmp_path / "results" / "smoke" / notebook),
                             device="cpu", **extra)


def test_jobs_are_the_notebooks_grids_by_seed_and_shard():
    p = shards.parameters("kanezaki2018", "smoke")  # 2 forms x M=2, 2 seeds; 4 k-means + 2 GS + blank
    jobs = shards.jobs("kanezaki2018", p, shards=3)
    cnn = [j for j in jobs if j.grid == "kanezaki2018"]
    cpu = [j for j in jobs if j.grid == "baselines"]
    assert len(cnn) == 2 * 2 * 3  # one job per (configuration, seed, shard)
    assert len(cpu) == 2 * 3  # the cheap grid: one job per (seed, shard) for all its configurations
    assert len({j.name for j in jobs}) == len(jobs)
    assert shards.find("kanezaki2018", p, cnn[5].name) == cnn[5]
    assert cpu[0].name == "baselines-all-seed0-synthetic-1of3"
    with pytest.raises(ParameterError, match="not one of kanezaki2018's jobs"):
        shards.find("kanezaki2018", p, "kanezaki2018-7-seed0-synthetic-1of3")  # there is no 8th configuration
    with pytest.raises(ParameterError, match="expected <grid>"):
        shards.find("kanezaki2018", p, "kanezaki2018 0")
    with pytest.raises(ParameterError, match="shards=0"):
        shards.jobs("kanezaki2018", p, shards=0)
    with pytest.raises(ValueError, match="not a per-image notebook"):
        plans.grids("seggan", p)


def test_two_notebooks_that_need_the_same_work_share_its_job():
    """kanezaki2018_depth's paper grid (M = 1..5, both forms) is kanezaki2018's Table 1 grid:
    each of its jobs has the work key of one of kanezaki2018's. dynamicseg's four DynamicSeg rows
    are in dynamicseg_mu's sweep: on BSDS500 they share jobs (dynamicseg's VOC images are its own),
    though dynamicseg keeps the label maps and dynamicseg_mu does not."""
    keys = {}
    for notebook in ("kanezaki2018", "kanezaki2018_depth", "dynamicseg", "dynamicseg_mu"):
        p = shards.parameters(notebook, "paper")
        keys[notebook] = {shards.work_key(notebook, p, j) for j in shards.jobs(notebook, p, shards=2)}
    assert len(keys["kanezaki2018_depth"]) == 2 * 5 * 3 * 2  # forms x M x seeds x shards
    assert keys["kanezaki2018_depth"] < keys["kanezaki2018"]
    shared = keys["dynamicseg"] & keys["dynamicseg_mu"]
    assert len(shared) == 4 * 3 * 2 and all("bsds500_test" in k for k in shared)
    smoke = {nb: {shards.work_key(nb, p, j) for j in shards.jobs(nb, p, shards=2)}
             for nb in ("kanezaki2018", "kanezaki2018_depth") for p in [shards.parameters(nb, "smoke")]}
    assert not smoke["kanezaki2018"] & smoke["kanezaki2018_depth"]  # other image sizes: other work


@pytest.mark.parametrize("notebook", sorted(plans.PLANS))
def test_the_plans_name_the_image_sets_the_notebooks_open(notebook):
    """Jobs are cut per image set from names known without reading an image: they must be the
    names the notebook's own image loader gives its sets."""
    p = shards.parameters(notebook, "smoke", **({"bsds_images": 0} if notebook.startswith(("kanezaki", "dyn")) else {}))
    plan = plans.PLANS[notebook]
    assert set(plan.sets(p)) == set(plan.images(p, "fail").sets)
    root = shared_datasets()
    if root is not None:  # the demo profile's real sets (BSDS500, PH2, lung CT) where staged
        p = shards.parameters(notebook, "demo", data_root=str(root))
        opened = plan.images(p, "skip")
        assert set(opened.sets) <= set(plan.sets(p)) and len(opened.sets) >= 2


def test_the_notebooks_call_the_plans():
    """One list of configurations: each per-image notebook builds its grids with lib/plans.py."""
    for notebook in plans.PLANS:
        text = (REPO / "notebooks" / f"{notebook}.ipynb").read_text()
        assert f"plans.{notebook}(" in text, notebook


def _table(notebook, p, store):
    plan = plans.PLANS[notebook]
    samples = [s for group in plan.images(p, "fail").sets.values() for s in group]
    frames, computed = [], 0
    for grid in plans.grids(notebook, p):
        df, records = run_grid(grid, samples, p["seeds"], store, evaluator=plan.evaluator(p), device="cpu",
                               max_side=p["max_side"], progress=False)
        frames.append(df)
        computed += sum(r.computed for recs in records.values() for r in recs)
    return pd.concat(frames, ignore_index=True).drop(columns="seconds_per_image"), computed


def test_shards_run_at_once_give_the_unsharded_table(tmp_path, monkeypatch):
    """Three processes share kanezaki2018_depth's 16 jobs (2 forms x 2 depths x 2 seeds x 2
    shards) and write into one cache at the same time; the notebook's gathering step then finds
    every record, and its table equals the one an unsharded run computes in a cache of its own."""
    notebook = "kanezaki2018_depth"
    p = _params(notebook, tmp_path)
    names = [j.name for j in shards.jobs(notebook, p, shards=2)]
    assert len(names) == 16
    script = ("import sys; from lib import shards\n"
              f"p = shards.parameters({notebook!r}, 'smoke', results_dir=sys.argv[1], device='cpu')\n"
              f"for name in sys.argv[2:]: shards.run_job({notebook!r}, p, shards.find({notebook!r}, p, name))\n")
    # bit-identical on CPU needs the same kernels: one thread and one memory layout everywhere
    # (the layout is otherwise measured per machine, lib/layout.py, and timing under load varies)
    monkeypatch.setenv("SEGSTUDY_LAYOUT", "nchw")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-c", script, p["results_dir"], *names[k::3]], cwd=REPO, env=env,
                                stderr=subprocess.PIPE, text=True) for k in range(3)]
    for w in workers:
        assert w.wait(timeout=600) == 0, w.stderr.read()[-3000:]
    results = tmp_path / "results" / "smoke"
    markers = [shards.marker(results, shards.work_key(notebook, p, shards.find(notebook, p, n))) for n in names]
    assert all(m.is_file() for m in markers)
    assert not list(results.rglob("*.tmp"))
    sharded, recomputed = _table(notebook, p, results / "cache")
    assert recomputed == 0  # the notebook only gathers
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each job: the thread count changes CPU rounding too
    try:
        alone, computed = _table(notebook, p, tmp_path / "alone")
    finally:
        torch.set_num_threads(threads)
    assert computed == len(sharded) * 2  # 2 images per (configuration, seed) row
    pd.testing.assert_frame_equal(sharded, alone)


def test_a_killed_job_reruns_only_its_unfinished_images(tmp_path, monkeypatch):
    notebook = "kanezaki2018_depth"
    p = _params(notebook, tmp_path)
    job = shards.find(notebook, p, "depths-0-seed0-synthetic-1of1")  # both images, one at a time on CPU
    original, calls = Kanezaki2018.run, []

    def dies_on_the_second_image(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a job killed by its scheduler
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Kanezaki2018, "run", dies_on_the_second_image)
    with pytest.raises(KeyboardInterrupt):
        shards.run_job(notebook, p, job)
    marker = shards.marker(tmp_path / "results" / "smoke", shards.work_key(notebook, p, job))
    assert not marker.exists()  # Snakemake will run it again
    monkeypatch.setattr(Kanezaki2018, "run", original)
    done = shards.run_job(notebook, p, job)
    assert (done["images"], done["computed"], done["cached"]) == (2, 1, 1)
    assert marker.is_file()
    again = shards.run_job(notebook, p, job)
    assert (again["computed"], again["cached"]) == (0, 2)


def test_each_job_gets_a_gpu_of_its_own(tmp_path, monkeypatch):
    """Several GPUs visible: each claim takes a device no other holds, and makes it the only one
    its process sees; one visible GPU (SLURM's --gres) is used as it is."""
    monkeypatch.setattr(shards, "_HELD", [])
    claimed = []
    for _ in range(2):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
        claimed.append(shards.claim_gpu(tmp_path, wait=0))
        assert os.environ["CUDA_VISIBLE_DEVICES"] == claimed[-1]
    assert claimed == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with pytest.raises(RuntimeError, match="held by another job"):
        shards.claim_gpu(tmp_path, wait=0)
    for handle in shards._HELD:
        handle.close()  # the jobs end: their devices are free again
    monkeypatch.setattr(shards, "_HELD", [])
    assert shards.claim_gpu(tmp_path, wait=0) == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert shards.claim_gpu(tmp_path, wait=0) == "1"
    for handle in shards._HELD:
        handle.close()


def test_iteration_flops_known_answer():
    """Kanezaki 2018 with M = 1 (q = p = 100): a 3x3 convolution 3 -> 100 and a 1x1 100 -> 100.
    Per pixel, forward 2 (2700 + 10000) FLOPs; backward the 1x1's input and weight gradients
    2 x 2 x 10000 and the 3x3's weight gradient 2 x 2700 (the image needs no gradient)."""
    per_pixel = 2 * (2700 + 10000) + 2 * 2 * 10000 + 2 * 2700
    assert per_pixel == 70800
    for form in ("paper", "code"):
        flops = shards.iteration_flops(Kanezaki2018(form=form, n_layers=1, iterations=7), [(32, 48), (20, 10)])
        assert flops == per_pixel * (32 * 48 + 20 * 10)
    # M = 2 adds a 3x3 convolution 100 -> 100: forward, input and weight gradients
    flops = shards.iteration_flops(Kanezaki2018(form="paper", n_layers=2, iterations=7), [(8, 8)])
    assert flops == (per_pixel + 3 * 2 * 90000) * 64


def test_the_dry_run_counts_jobs_and_image_iterations(capsys):
    from lib.cli import main

    assert main(["plan", "kanezaki2018_depth", "--profile", "smoke", "--shards", "2", "--tflops", "10"]) == 0
    out = capsys.readouterr().out
    # 2 forms x 2 depths x 2 seeds x 2 images; iterations 3 (paper) and 6 (code)
    assert "in all (shared jobs once): 16 jobs, 72 image x iterations at most" in out, out
    assert "10 TFLOP/s" in out
