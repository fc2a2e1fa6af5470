"""lib.kernels.execute_notebook: kernels started at the same moment do not collide (each run
talks to its own kernel), and a failing notebook leaves no output behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import REPO
from lib.kernels import execute_notebook

RUNS = 6

# the kernel reports who it is and what it was given
REPORT = """import json, os
from ipykernel.connect import get_connection_info
info = get_connection_info(unpack=True)
print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "value": value, "label": label,
                  "transport": info["transport"], "ip": info["ip"]}))"""

# one run: import everything, say so, wait for the common start signal, then run the notebook
LAUNCH = """import sys, time
from pathlib import Path
from lib.kernels import execute_notebook
nb, out, params, value, folder = sys.argv[1:]
Path(folder, f"ready-{value}").touch()
while not Path(folder, "go").exists():
    time.sleep(0.005)
execute_notebook(nb, out, parameters={"value": int(value)}, parameters_file=params, cwd=folder)"""


def _notebook(path: Path, *cells: str) -> Path:
    nb = new_notebook(cells=[new_code_cell("value = None\nlabel = None", metadata={"tags": ["parameters"]}),
                             *(new_code_cell(c) for c in cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _report(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    return json.loads(nb.cells[-1].outputs[0]["text"])


def test_concurrent_runs_each_talk_to_their_own_kernel(tmp_path):
    nb = _notebook(tmp_path / "report.ipynb", REPORT)
    params = tmp_path / "params.yaml"
    params.write_text("value: -1\nlabel: from-yaml\n")  # value is overridden by each run's own
    sockets = tmp_path / "tmp"  # the runs' temporary folder: where the private socket folders go
    sockets.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "TMPDIR": str(sockets)}
    procs = [subprocess.Popen([sys.executable, "-c", LAUNCH, str(nb), str(out / f"run{i}.ipynb"), str(params),
                               str(i), str(tmp_path)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(RUNS)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < RUNS:  # every run has imported papermill
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a run did not get ready"
        time.sleep(0.01)
    (tmp_path / "go").touch()  # all kernels start now
    for i, p in enumerate(procs):
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, f"run {i} failed:\n{err[-3000:]}"

    reports = [_report(out / f"run{i}.ipynb") for i in range(RUNS)]
    assert [r["value"] for r in reports] == list(range(RUNS))  # each output holds its own parameter
    assert all(r["label"] == "from-yaml" for r in reports)  # the parameters file, under `parameters`
    assert len({r["pid"] for r in reports}) == RUNS  # six kernels
    assert [r["ppid"] for r in reports] == [p.pid for p in procs]  # each run talked to the kernel it started
    assert {r["transport"] for r in reports} == {"ipc"}
    assert len({Path(r["ip"]).parent for r in reports}) == RUNS  # a private socket folder per run
    assert sorted(p.name for p in out.iterdir()) == [f"run{i}.ipynb" for i in range(RUNS)]  # no part files
    assert not list(sockets.iterdir())  # socket folders removed
    meta = nbformat.read(out / "run0.ipynb", as_version=4).metadata.papermill
    assert meta["output_path"] == str(out / "run0.ipynb")  # the final name, not the temporary one
    assert meta["parameters"] == {"value": 0, "label": "from-yaml"}


def test_failing_notebook_leaves_no_output_only_what_failed(tmp_path, monkeypatch):
    nb = _notebook(tmp_path / "fails.ipynb", "raise ValueError('boom')")
    sockets = tmp_path / "tmp"
    sockets.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(sockets))
    out = tmp_path / "out"
    with pytest.raises(papermill.PapermillExecutionError) as err:
        execute_notebook(nb, out / "fails.ipynb", parameters={"value": 1})
    assert err.value.ename == "ValueError" and "boom" in err.value.evalue
    assert [p.name for p in out.iterdir()] == ["fails.failed.ipynb"]  # no output, no temporary file
    failed = nbformat.read(out / "fails.failed.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in failed.cells for o in c.get("outputs", []))
    assert not list(sockets.iterdir())
