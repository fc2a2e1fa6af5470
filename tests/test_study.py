"""The notebook setup: parameters read from the parameters cell, checked by type and name, and
every one of them recorded without being typed twice."""

from __future__ import annotations

import json
import types

import pytest

from lib import study


def _namespace(notebook: str, **changes):
    ns = {name: d.default for name, d in study.declared_parameters(notebook).items()}
    # what a kernel holds besides the parameters: IPython's names, private names, imported modules
    ns.update(In=[""], Out={}, get_ipython=print, _ih=[], __name__="__main__", study=study, types=types)
    ns.update(changes)
    return ns


def test_declaration_comes_from_the_parameters_cell():
    import ast

    import papermill

    from lib.paths import REPO_ROOT

    declared = study.declared_parameters("kanezaki2018")
    # papermill, reading the same cell its own way, finds the same names and defaults
    inspected = papermill.inspect_notebook(str(REPO_ROOT / "notebooks" / "kanezaki2018.ipynb"))
    assert set(inspected) == set(declared)
    for name, p in inspected.items():
        assert ast.literal_eval(p["default"]) == declared[name].default, name
    assert declared["iterations"].comment.startswith("paper form: T")
    # max_side: 128 in the cell, null in the paper profile's YAML
    assert set(declared["max_side"].types) == {int, type(None)}


@pytest.mark.parametrize("name, value", [
    ("iterations", 5),  # a dict of the forms' iteration counts
    ("n_layers", 2),  # a list of M values
    ("photos", "chelsea"),  # a list of names
    ("bsds_images", "two"),
    ("progress", "yes"),
])
def test_a_value_of_the_wrong_type_names_the_parameter(name, value):
    with pytest.raises(study.ParameterError, match=rf"parameter {name}="):
        study.read_parameters("kanezaki2018", _namespace("kanezaki2018", **{name: value}))


def test_compatible_values_pass():
    ns = _namespace("dynamicseg", kim_mu=5, max_side=None, data_root="/data", seeds=[3])
    values = study.read_parameters("dynamicseg", ns)
    assert values["kim_mu"] == 5 and values["max_side"] is None and values["data_root"] == "/data"


def test_an_unknown_name_is_an_error():
    with pytest.raises(study.ParameterError, match="unknown parameter.*iteratons"):
        study.read_parameters("kanezaki2018", _namespace("kanezaki2018", iteratons=5))
    # names the notebook's own cells bind are not parameters: re-running the setup cell works
    rerun = _namespace("kanezaki2018", nb=None, summary=None, kanezaki=[])
    assert study.read_parameters("kanezaki2018", rerun)["iterations"] == _namespace("kanezaki2018")["iterations"]


def test_setup_records_every_parameter(tmp_path):
    nb = study.setup("kanezaki2018", _namespace("kanezaki2018", results_dir=str(tmp_path), device="cpu"))
    recorded = json.loads((tmp_path / "metrics.json").read_text())["parameters"]
    declared = set(study.declared_parameters("kanezaki2018"))
    assert set(recorded) == declared | {"device"}
    assert recorded["kmeans_ks"] == list(range(2, 21)) and recorded["device"] == "cpu"
    assert nb.store == tmp_path.parent / "cache" and nb.options["max_side"] == recorded["max_side"] == 96
    assert nb.options["batch_size"] is None  # 0: the device's default


@pytest.mark.parametrize("name, value", [("profile", "quick"), ("seeds", [1, 1]), ("device", "gpu"),
                                         ("max_side", 4), ("batch_size", -1), ("data_root", 3),
                                         ("bsds_images", -2), ("synthetic_images", -1),
                                         ("synthetic_size", [16]), ("synthetic_size", [8, 40])])
def test_shared_checks(tmp_path, name, value):
    ns = _namespace("kanezaki2018", results_dir=str(tmp_path), **{name: value})
    with pytest.raises(study.ParameterError, match=name):
        study.setup("kanezaki2018", ns)


def test_missing_data_is_checked(tmp_path):
    ns = _namespace("kanezaki2018", results_dir=str(tmp_path), missing_data="ignore")
    with pytest.raises(study.ParameterError, match="missing_data='ignore'"):
        study.setup("kanezaki2018", ns)


# --------------------------------------------------------------------------------------------
# a dataset the parameters ask for: there, absent and "fail", or absent and "skip"

SETS = dict(synthetic_images=1, synthetic_size=[16, 16], bsds_images=4)


def _data_root(tmp_path, state: str) -> str:
    """A data root that does not exist, is empty, or holds a BSDS500 copy missing one .mat."""
    from conftest import write_fake_bsds

    root = tmp_path / state
    if state == "empty":
        root.mkdir()
    elif state == "one_mat_missing":
        write_fake_bsds(root, ids=("2", "10", "37"))
        (root / "bsds500" / "groundTruth" / "test" / "10.mat").unlink()
    return str(root)


@pytest.mark.parametrize("state, named", [
    ("absent", "bsds500/images/test"), ("empty", "bsds500/images/test"),
    ("one_mat_missing", "groundTruth/test/10.mat")])
def test_a_requested_dataset_that_cannot_be_read_fails_by_name(tmp_path, state, named):
    with pytest.raises(study.DatasetNotFound) as err:
        study.evaluation_sets(**SETS, data_root=_data_root(tmp_path, state), missing="fail")
    message = str(err.value)
    assert message.startswith("bsds_images=4 asks for BSDS500 test") and named in message
    assert "python -m lib download bsds500" in message and "no evaluation images" not in message
    if state == "one_mat_missing":
        assert "ground truth of 1 of the 3 test images" in message


def test_the_lesion_datasets_fail_the_same_way(tmp_path):
    with pytest.raises(study.DatasetNotFound, match=r"ph2_images=-1 asks for PH2.*ph2"):
        study.lesion_sets(synthetic_images=1, synthetic_size=[16, 16], data_root=str(tmp_path), ph2=-1,
                          missing="fail")
    opened = study.lesion_sets(synthetic_images=1, synthetic_size=[16, 16], data_root=str(tmp_path), ph2=-1,
                               lung_ct=2, missing="skip")
    assert list(opened.sets) == ["synthetic_lesions"] and list(opened.absent) == ["ph2", "lung_ct"]
    assert opened.absent["lung_ct"].startswith("Kaggle lung CT 2D (asked for by lung_images=2): lung CT not found")


def test_skip_goes_on_without_it_and_says_why(tmp_path):
    opened = study.evaluation_sets(**SETS, data_root=_data_root(tmp_path, "absent"), missing="skip")
    assert list(opened.sets) == ["synthetic"]
    assert opened.absent["bsds500"].startswith("BSDS500 test (asked for by bsds_images=4): BSDS500 test images "
                                               "not found:")
    with pytest.raises(study.ParameterError, match="no evaluation images.*absent: BSDS500 test"):
        study.evaluation_sets(**{**SETS, "synthetic_images": 0}, data_root=str(tmp_path), missing="skip")


def test_a_broken_file_is_never_skipped(tmp_path):
    from lib.data import DatasetError

    root = _data_root(tmp_path, "one_mat_missing")
    (tmp_path / "one_mat_missing" / "bsds500" / "groundTruth" / "test" / "10.mat").write_text("not a .mat")
    with pytest.raises(DatasetError, match="10.mat"):
        study.evaluation_sets(**SETS, data_root=root, missing="skip")


def test_the_notebook_records_what_it_ran_on_and_what_was_absent(tmp_path):
    ns = _namespace("kanezaki2018", results_dir=str(tmp_path / "out"), device="cpu",
                    data_root=_data_root(tmp_path, "absent"), missing_data="skip", **SETS)
    nb = study.setup("kanezaki2018", ns)
    sets, notes = nb.evaluation_sets(**SETS, data_root=ns["data_root"])
    assert list(sets) == list(notes) == ["synthetic"] and list(nb.absent) == ["bsds500"]
    import pandas as pd

    shown = nb.table(pd.DataFrame({"miou_all": [0.5]}), "t", "T", dataset=notes["synthetic"], protocol="Kim mIoU")
    assert "Absent from this run (missing_data = 'skip'): BSDS500 test (asked for by bsds_images=4)" in shown.data
    nb.finish(headline={"miou_all": 0.5})
    meta = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert meta["complete"] and meta["datasets"] == {"synthetic": 1} and list(meta["absent"]) == ["bsds500"]
    assert meta["metrics"] == {"headline": {"miou_all": 0.5}}
