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
                                         ("max_side", 4), ("batch_size", -1), ("data_root", 3)])
def test_shared_checks(tmp_path, name, value):
    ns = _namespace("kanezaki2018", results_dir=str(tmp_path), **{name: value})
    with pytest.raises(study.ParameterError, match=name):
        study.setup("kanezaki2018", ns)
