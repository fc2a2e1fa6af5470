"""Every notebook: committed clean, parameterised for papermill, and runs headless (smoke profile)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from conftest import REPO, shared_datasets, write_fake_sbd, write_fake_stanford, write_fake_voc

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
PROFILES = ("smoke", "demo", "paper")


def _parameters_cell(nb) -> dict:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged 'parameters'"
    tree = ast.parse(cells[0].source)
    values = {}
    for node in tree.body:
        assert isinstance(node, ast.Assign), f"parameters cell: only plain assignments, got {ast.dump(node)[:60]}"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # plain literals only
    return values


def test_there_are_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {"kanezaki2018", "kanezaki2018_depth"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}: a code cell has outputs"
            assert cell.execution_count is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_and_profiles(path: Path):
    params = _parameters_cell(nbformat.read(path, as_version=4))
    # papermill must read every parameter (it gives up on a line whose comment holds '=')
    assert set(papermill.inspect_notebook(str(path))) == set(params)
    assert params["profile"] == "demo", "the parameters cell's defaults are the demo profile"
    for name in ("profile", "seeds", "device", "data_root", "results_dir", "progress"):
        assert name in params, f"{path.name}: parameter {name!r} missing"
    for profile in PROFILES:
        file = REPO / "notebooks" / "params" / path.stem / f"{profile}.yaml"
        assert file.is_file(), f"missing {file}"
        values = yaml.safe_load(file.read_text())
        assert values["profile"] == profile
        unknown = set(values) - set(params)
        assert not unknown, f"{file}: parameters the notebook does not have: {unknown}"


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_readable_code(path: Path):
    """Short lines, no unused import, no label parsing, one setup call that records the parameters."""
    nb = nbformat.read(path, as_version=4)
    code = _code(nb)
    long = [line for cell in code for line in cell.splitlines() if len(line) > 100]
    assert not long, f"{path.name}: code lines over 100 characters: {long[:3]}"
    tree = ast.parse("\n".join(code))
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                imported[alias.asname or alias.name.split(".")[0]] = node.lineno
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not set(imported) - used, f"{path.name}: unused imports {sorted(set(imported) - used)}"
    text = "\n".join(code)
    for parse in (".str.extract(", ".str.replace(", "label().replace(", "label.replace("):
        assert parse not in text, f"{path.name}: selects rows by parsing a label ({parse})"
    setup = f'study.setup("{path.stem}", globals())'
    params_at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    first_code = next(c for c in nb.cells[params_at + 1:] if c.cell_type == "code")
    assert setup in first_code.source, f"{path.name}: the cell after the parameters must call {setup}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cites_papers_not_workspace_files(path: Path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "../shared" not in text, f"{path.name}: cites a workspace path a clone does not have"
    assert "doi:" in text.lower() or "arxiv:" in text.lower(), f"{path.name}: no DOI or arXiv id cited"


def test_region_benchmarks_are_not_described_as_connected_segments():
    """Covering, PRI and VOI are computed on the label maps as given (lib/metrics/region.py): no
    markdown, caption string or README sentence may say otherwise."""
    import re

    assert "as given" in (REPO / "lib" / "metrics" / "region.py").read_text()
    texts = [("README.md", (REPO / "README.md").read_text())]
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                texts.append((path.name, cell.source))
            else:  # the strings of the code: captions and protocols
                texts += [(path.name, n.value) for n in ast.walk(ast.parse(cell.source))
                          if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    for name, text in texts:
        for sentence in re.split(r"(?<=[.;])\s", text):
            if re.search(r"Covering|PRI|VOI|region benchmark", sentence):
                assert "4-connected" not in sentence and "connected segments" not in sentence, (name, sentence)


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_in_smoke_profile(path: Path, tmp_path: Path):
    params = yaml.safe_load((REPO / "notebooks" / "params" / path.stem / "smoke.yaml").read_text())
    root = tmp_path / "data"
    root.mkdir()
    if shared_datasets() is not None:  # one real image of each dataset too, so the paper-comparison paths run
        for name, param in (("bsds500", "bsds_images"), ("ph2", "ph2_images"), ("lung_ct", "lung_images"),
                            ("animals90", "animal_images"), ("oxford_iiit_pet", "pet_images")):
            if (shared_datasets() / name).is_dir():
                (root / name).symlink_to(shared_datasets() / name)
                if param in params:
                    params[param] = 1
    if "voc_images" in params:  # two files in VOC's layout, named as the first two of the 150-image list
        from lib.data.voc2012 import VAL150

        write_fake_voc(root, ids=VAL150.read_text().split()[:2], shape=(24, 30))
        if path.stem.startswith("seggan"):  # and a training set: SBD, and VOC's train list
            write_fake_sbd(root, train=("2008_000002", "2008_000008"), val=(), shape=(24, 30))
            (root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt").write_text("")
        params.update(voc_images=2)
    if "stanford_images" in params:  # two training and one test image in Stanford Background's layout
        from lib.data.stanford_background import read_split_file

        split = read_split_file()
        ids = [i for i in split if split[i] == "train"][:2] + [i for i in split if split[i] == "test"][:1]
        write_fake_stanford(root, ids=ids, shape=(24, 30))
        params.update(stanford_images=2)
    params["data_root"] = str(root)
    out_dir = tmp_path / "results"
    papermill.execute_notebook(
        str(path), str(tmp_path / path.name), parameters={**params, "results_dir": str(out_dir)},
        kernel_name="python3", cwd=str(REPO / "notebooks"), progress_bar=False,
    )
    meta = json.loads((out_dir / "metrics.json").read_text())
    assert meta["profile"] == "smoke" and meta["notebook"] == path.stem
    if "voc_images" in params and not path.stem.startswith("seggan"):
        assert "table1_voc2012_val150" in meta["tables"]
    if path.stem == "seggan":  # the paper's two tables, with the paper's numbers beside ours
        assert {"table2_stanford_background", "table1_voc2012", "deeplab_context"} <= set(meta["tables"])
    assert meta["tables"], "the notebook wrote no table"
    for name, table in meta["tables"].items():
        for f in table["files"]:
            assert (out_dir / f).stat().st_size > 0, f
        assert "Profile: smoke" in table["caption"] and "Seeds:" in table["caption"] and "Protocol:" in table["caption"]
    for name, fig in meta["figures"].items():
        for f in fig["files"]:
            assert (out_dir / f).stat().st_size > 0, f
    # a second run resumes from the per-image cache and gives the same tables
    first = {n: (out_dir / f"{n}.csv").read_text() for n in meta["tables"]}
    written = {p.name for p in out_dir.iterdir()}
    papermill.execute_notebook(
        str(path), str(tmp_path / f"again_{path.name}"), parameters={**params, "results_dir": str(out_dir)},
        kernel_name="python3", cwd=str(REPO / "notebooks"), progress_bar=False,
    )
    for n, text in first.items():  # even the timings: they are read back from the cache
        assert (out_dir / f"{n}.csv").read_text() == text, f"{n} changed on a resumed run"
    # the rerun left the folder as the first run did: the same files, none half-written, complete
    assert meta["complete"] and json.loads((out_dir / "metrics.json").read_text())["complete"]
    assert {p.name for p in out_dir.iterdir()} == written
    assert not list(out_dir.parent.rglob("*.tmp"))


@pytest.mark.notebooks
@pytest.mark.parametrize("missing_data", ["fail", "skip"])
def test_an_absent_dataset_is_never_dropped_silently(tmp_path: Path, missing_data: str):
    """BSDS500 asked for (bsds_images=1) under a data root without it: the run stops with the
    loader's message, or (missing_data="skip") completes and every caption says it is absent."""
    params = yaml.safe_load((REPO / "notebooks" / "params" / "kanezaki2018_depth" / "smoke.yaml").read_text())
    out_dir = tmp_path / "results"
    run = dict(parameters={**params, "bsds_images": 1, "missing_data": missing_data, "data_root": str(tmp_path),
                           "results_dir": str(out_dir)},
               kernel_name="python3", cwd=str(REPO / "notebooks"), progress_bar=False)
    if missing_data == "fail":
        with pytest.raises(papermill.PapermillExecutionError) as err:
            papermill.execute_notebook(str(REPO / "notebooks" / "kanezaki2018_depth.ipynb"),
                                       str(tmp_path / "out.ipynb"), **run)
        assert err.value.ename == "DatasetNotFound"
        assert "bsds_images=1 asks for BSDS500 test" in err.value.evalue
        assert str(tmp_path / "bsds500" / "images" / "test") in err.value.evalue
        assert not json.loads((out_dir / "metrics.json").read_text())["complete"]
        return
    papermill.execute_notebook(str(REPO / "notebooks" / "kanezaki2018_depth.ipynb"), str(tmp_path / "out.ipynb"), **run)
    meta = json.loads((out_dir / "metrics.json").read_text())
    assert meta["complete"] and list(meta["absent"]) == ["bsds500"] and "bsds500/test" not in meta["datasets"]
    assert meta["tables"]
    for table in meta["tables"].values():
        assert "Absent from this run (missing_data = 'skip'): BSDS500 test (asked for by bsds_images=1)" in table["caption"]
