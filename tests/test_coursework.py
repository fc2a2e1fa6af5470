"""The coursework (lib/coursework.py, notebooks/coursework/): built in the smoke size into a
temporary course folder, then checked as a teacher would rely on it:

- the templates are clean, and every solution they name is a function of the study;
- the released notebooks hold no solution and no hidden test;
- a released notebook runs top to bottom, failing only where a stub is called;
- ``nbgrader autograde`` gives full marks to the solution, zero to an untouched notebook, and a
  deliberately wrong solution (the templates' ``mutations``) loses exactly the marks of the
  tests named to catch it.

``COURSEWORK_ONLY=name[,name]`` restricts the module to some assignments (for template authors).
"""

from __future__ import annotations

import ast
import os
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import nbformat
import pytest
import yaml

from lib import coursework

ALL = coursework.templates()
ONLY = [n for n in os.environ.get("COURSEWORK_ONLY", "").split(",") if n]
NAMES = ONLY or ALL
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def test_the_assignments_the_issue_asks_for():
    assert set(ALL) >= {"kanezaki2018", "continuity", "kim_miou", "s3net", "jigsaw", "confusion"}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    coursework.build(root, size="smoke", only=NAMES, log=lambda *_: None)
    return root


# --------------------------------------------------------------------------------------------
# Templates


@pytest.mark.parametrize("name", NAMES)
def test_template_is_clean(name):
    path = coursework.TEMPLATES / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    info = coursework.describe(name, nb)
    assert info.solutions, f"{name}: no exercise"
    ids = [g for g, _, _ in info.tests]
    assert len(ids) == len(set(ids)), f"{name}: grade ids repeat: {ids}"
    assert all(p > 0 for _, p, _ in info.tests)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name}: a cell has outputs"
            long = [line for line in cell.source.splitlines() if len(line) > 100]
            assert not long, f"{name}: lines over 100 characters: {long[:2]}"
        if cell.metadata.get("nbgrader", {}).get("grade"):
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            assert "assert" in visible, f"{name}: {cell.metadata.nbgrader.grade_id} has no visible test"
    filled = "\n".join(c.source for c in coursework.source_notebook(name).cells if c.cell_type == "code")
    tree = ast.parse(filled)
    imported = {a.asname or a.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not imported - used, f"{name}: unused imports {sorted(imported - used)}"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for node in ast.parse(params[0].source).body:
        assert isinstance(node, ast.Assign), f"{name}: the parameters cell holds only assignments"
        ast.literal_eval(node.value)
    smoke = yaml.safe_load((coursework.TEMPLATES / "params" / name / "smoke.yaml").read_text())
    assert set(smoke) <= set(coursework._assigned(params[0].source))


@pytest.mark.parametrize("name", NAMES)
def test_solutions_come_from_the_study(name):
    """Every solution cell is filled with the study's own function: its body is the solution."""
    nb = coursework.source_notebook(name, "smoke")
    for cell in nb.cells:
        ref = cell.metadata.get("coursework", {}).get("solution")
        if ref:
            code = coursework.function_source(ref)
            assert cell.source.replace("### BEGIN SOLUTION\n", "").replace("### END SOLUTION", "") \
                .replace(" " * 4 + "\n", "").split() == code.split(), ref


def test_mark_solution_keeps_signature_and_docstring():
    src = 'def f(x):\n    """Twice x."""\n    y = 2 * x\n    return y\n'
    assert coursework.mark_solution(src) == ('def f(x):\n    """Twice x."""\n    ### BEGIN SOLUTION\n'
                                             '    y = 2 * x\n    return y\n    ### END SOLUTION')
    with pytest.raises(coursework.CourseworkError, match="one function"):
        coursework.mark_solution("x = 1\n")


def test_bad_references_name_what_to_fix():
    with pytest.raises(coursework.CourseworkError, match="lib.module:name"):
        coursework.function_source("lib.losses.continuity_loss")
    with pytest.raises(coursework.CourseworkError, match="no_such"):
        coursework.function_source("lib.losses:no_such")
    with pytest.raises(coursework.CourseworkError, match="defines no top-level"):
        coursework.function_source("notebooks/kanezaki2018.ipynb:no_such")
    with pytest.raises(coursework.CourseworkError, match="unknown assignment"):
        coursework.build("/nonexistent/never", only=["no_such"])


# --------------------------------------------------------------------------------------------
# Released notebooks


def _solution_lines(name: str) -> set[str]:
    """Distinctive lines of the solutions' bodies (those not also in the rest of the template)."""
    template = "\n".join(c.source for c in coursework.read_template(name).cells)
    lines = set()
    for ref in coursework.describe(name).solutions:
        body = coursework.mark_solution(coursework.function_source(ref)).split("### BEGIN SOLUTION")[1]
        lines |= {ln.strip() for ln in body.splitlines() if len(ln.strip()) > 12 and ln.strip() not in template}
    return lines - {"### END SOLUTION"}


@pytest.mark.parametrize("name", NAMES)
def test_release_holds_no_solution(course, name):
    release = course / "release" / name / f"{name}.ipynb"
    text = "\n".join(c.source for c in nbformat.read(release, as_version=4).cells)
    for marker in MARKERS:
        assert marker not in text
    leaked = [ln for ln in _solution_lines(name) if ln in text]
    assert not leaked, f"{name}: solution lines in the release: {leaked[:3]}"
    stubs = [c for c in nbformat.read(release, as_version=4).cells
             if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(stubs) == len(coursework.describe(name).solutions)
    assert all(c.source.rstrip().endswith("raise NotImplementedError()") for c in stubs)


def _top_level_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for t in targets:
            names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)} if t is not None else set()
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For)):
            names.add(getattr(node, "name", ""))
    return names


@pytest.mark.parametrize("name", NAMES)
def test_release_runs_failing_only_at_stubs(graded, name):
    """Top to bottom with the stubs (as autograde ran the untouched release, hidden tests
    restored): every error is the stub's NotImplementedError, or comes from a cell that reads
    what a failed cell (one that called a stub) was making; every graded test fails."""
    folder, _ = graded[name]
    nb = nbformat.read(folder / "autograded" / "untouched" / name / f"{name}.ipynb", as_version=4)
    unmade: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        grade = cell.metadata.get("nbgrader", {})
        if grade.get("grade"):
            assert errors, f"{name}: test {grade['grade_id']} passes without a solution"
        if not errors:
            continue
        err = errors[0]
        read = {n.id for n in ast.walk(ast.parse(cell.source)) if isinstance(n, ast.Name)}
        if err.ename != "NotImplementedError":  # else it must descend from a failed cell's names
            assert read & unmade, f"{name}: {err.ename}: {err.evalue}, not from a stub, in\n{cell.source}"
        unmade |= _top_level_names(cell.source)


# --------------------------------------------------------------------------------------------
# Grading: each assignment in a course folder of its own, graded in parallel processes


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """``name -> (course folder, scores)`` after autograding the solution, the untouched release
    and the solution with all the template's mutations (lib.coursework.build_and_grade)."""
    root = tmp_path_factory.mktemp("graded")
    workers = max(1, min(len(NAMES), os.cpu_count() or 1, 4))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {n: pool.submit(coursework.build_and_grade, root / n, n) for n in NAMES}
        return {n: (root / n, f.result()) for n, f in futures.items()}


@pytest.mark.parametrize("name", NAMES)
def test_autograde_scores(graded, name):
    """Full marks for the solution, zero for the untouched release, and the mutated solution
    loses exactly the tests its mutations name, each test all or nothing."""
    _, scores = graded[name]
    info = coursework.describe(name)
    assert info.mutations, f"{name}: no deliberately wrong submission to grade"
    tests = {g for g, _, _ in info.tests}
    expected = {"solution": set(), "untouched": tests,
                "wrong": {g for m in info.mutations for g in m["loses"]}}
    assert expected["wrong"] and expected["wrong"] < tests
    for student, lost in expected.items():
        grades = scores[student]
        assert set(grades) == tests
        failed = {g for g, (score, top) in grades.items() if score < top}
        assert failed == lost, f"{name}, {student}: lost {sorted(failed)}, expected {sorted(lost)}"
        assert failed == {g for g, (score, _) in grades.items() if score == 0}, "all or nothing"


def test_mutations_must_match_their_solution():
    nb = coursework.source_notebook("continuity", "smoke")
    with pytest.raises(coursework.CourseworkError, match="exactly once"):
        coursework.mutate(nb, [{"solution": "continuity_loss", "replace": ["no such text", "x"]}])
    with pytest.raises(coursework.CourseworkError, match="no solution cell"):
        coursework.mutate(nb, [{"solution": "no_such", "replace": ["a", "b"]}])


def test_guide_names_every_assignment_and_command(course):
    guide = (course / "README.md").read_text()
    for name in NAMES:
        assert f"**{name}**" in guide
    for command in ("nbgrader autograde", "nbgrader generate_feedback", "nbgrader export"):
        assert command in guide


def test_a_rebuild_keeps_the_teachers_nbgrader_config(tmp_path):
    """A teacher's edit of nbgrader_config.py survives a rebuild; the build's version lands beside it."""
    said = []
    coursework.build(tmp_path, size="smoke", only=["kim_miou"], check=False, log=said.append)
    config = tmp_path / "nbgrader_config.py"
    built = config.read_text()
    assert not (tmp_path / "nbgrader_config.py.new").exists()  # nothing of the teacher's to keep yet
    coursework.build(tmp_path, size="smoke", only=["kim_miou"], check=False, log=said.append)
    assert config.read_text() == built and not (tmp_path / "nbgrader_config.py.new").exists()  # unchanged: same
    edited = built + "c.Exchange.root = '/srv/nbgrader/exchange'\n"
    config.write_text(edited)
    said.clear()
    coursework.build(tmp_path, size="smoke", only=["kim_miou"], check=False, log=said.append)
    assert config.read_text() == edited
    assert (tmp_path / "nbgrader_config.py.new").read_text() == built
    assert any("nbgrader_config.py.new" in line and "kept" in line for line in said), said
