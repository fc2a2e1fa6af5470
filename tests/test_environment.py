"""The environment is described once for uv (pyproject + uv.lock) and once for conda; they agree."""

from __future__ import annotations

import tomllib

import yaml

from conftest import REPO


def _pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_environment_yml_matches_pyproject():
    project = _pyproject()
    extras = project["optional-dependencies"]
    wanted = set(project["dependencies"]) | set(extras["test"]) | set(extras["teach"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert set(pip) - {"-e ."} == wanted
    assert "-e ." in pip, "environment.yml must install the study's own package"


def test_required_packages_are_pinned():
    deps = {d.split("==")[0]: d for d in _pyproject()["dependencies"]}
    for name in ("torch", "torchvision", "jupyterlab", "papermill", "pandas", "seaborn", "scikit-image", "snakemake"):
        assert name in deps and "==" in deps[name], f"{name} must be a pinned dependency"
    assert deps["torch"] == "torch==2.13.0" and deps["torchvision"] == "torchvision==0.28.0"


def test_lock_file_pins_the_same_versions():
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    locked = {p["name"]: p.get("version") for p in lock["package"]}
    for dep in _pyproject()["dependencies"]:
        name, version = dep.split("==")
        assert locked.get(name.lower()) == version, f"uv.lock has {name} {locked.get(name.lower())}, pyproject {version}"


def test_lib_is_not_ignored():
    import subprocess

    ignored = subprocess.run(["git", "check-ignore", "-q", "lib/__init__.py"], cwd=REPO).returncode == 0
    assert not ignored, "lib/ must be committed"


def test_readme_where_things_live_matches_the_code():
    """Every path of the README's map of one image's way to a table exists."""
    import re

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Where things live"):]
    block = section[section.index("```") + 3:]
    block = block[: block.index("```")]
    paths = re.findall(r"^(lib/\S+)", block, flags=re.M)
    assert len(paths) >= 8
    for path in paths:
        path = path.replace("<dataset>", "bsds500").replace("<paper>", "kanezaki2018").replace("<metric>", "region")
        assert (REPO / path).exists(), path
    for path in re.findall(r"`(lib/[\w/]+\.py)`", section.split("**The dataset-level papers**")[0]):
        assert (REPO / path).exists(), path
