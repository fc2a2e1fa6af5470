"""Coursework: nbgrader assignments built from the study's own code (``make coursework``).

A template per assignment lives in ``notebooks/coursework/<name>.ipynb``: prose, set-up, tests and
a run on real images, with nbgrader's cell metadata on its test cells (``grade``, ``points``,
``grade_id``; hidden parts between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``).
The code students write is never kept in the template: a cell whose metadata holds
``coursework: {"solution": REF}`` receives, at build time, the source of the function REF names,
its body (everything after the docstring) between ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
``coursework: {"given": REF}`` receives a function or class to read, locked. REF is
``lib.module:name`` (a function of the library, as the study runs it) or
``notebooks/<notebook>.ipynb:name`` (a function a study notebook defines in the open). So an
exercise's solution is the very code that makes the study's tables and cannot drift from it.

:func:`build` writes an nbgrader course folder::

    <course>/nbgrader_config.py
    <course>/source/<name>/<name>.ipynb     with solutions (what the teacher keeps)
    <course>/release/<name>/<name>.ipynb    nbgrader generate_assignment: stubs, no hidden test
    <course>/README.md                      the teacher's guide

``size`` picks the run's parameters: ``demo`` (the templates' defaults, minutes on a laptop) or
``smoke`` (``notebooks/coursework/params/<name>/smoke.yaml``, seconds, for the tests). With
``check``, every solution notebook is run top to bottom and its time goes into the guide.
The template's metadata ``coursework`` names the paper, its section, what the exercise teaches,
and ``mutations``: deliberately wrong edits of a solution and the tests that must catch them
(used by ``tests/test_coursework.py``).
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import json
import os
import platform
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import nbformat
import yaml

from .files import write_json, write_text
from .paths import REPO_ROOT

TEMPLATES = REPO_ROOT / "notebooks" / "coursework"
SIZES = ("smoke", "demo")
COURSE_ID = "segmentation-study"
#: seconds a cell may run under nbgrader autograde (its default, 30 s, is too short for a run)
CELL_TIMEOUT = 900
SCHEMA = 3  # nbgrader's cell metadata schema


class CourseworkError(RuntimeError):
    """A template or a build step that cannot be used as it is; the message says what to fix."""


def templates() -> list[str]:
    """The assignments, by name (``notebooks/coursework/<name>.ipynb``)."""
    return sorted(p.stem for p in TEMPLATES.glob("*.ipynb"))


# --------------------------------------------------------------------------------------------
# Where solutions come from


def function_source(ref: str) -> str:
    """The source of the function (or class) ``ref`` names: ``lib.module:name`` or
    ``notebooks/<file>.ipynb:name`` (a top-level ``def`` in one of that notebook's code cells)."""
    where, sep, name = ref.partition(":")
    if not sep or not name:
        raise CourseworkError(f"coursework reference {ref!r}: write 'lib.module:name' or "
                              "'notebooks/<file>.ipynb:name'")
    if where.endswith(".ipynb"):
        path = REPO_ROOT / where
        if not path.is_file():
            raise CourseworkError(f"coursework reference {ref!r}: no notebook {path}")
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                    return ast.get_source_segment(cell.source, node, padded=True)
        raise CourseworkError(f"coursework reference {ref!r}: {path.name} defines no top-level {name}")
    try:
        obj = getattr(importlib.import_module(where), name)
    except (ImportError, AttributeError) as exc:
        raise CourseworkError(f"coursework reference {ref!r}: {exc}") from exc
    return textwrap.dedent(inspect.getsource(obj))


def mark_solution(source: str) -> str:
    """Put the body of the function in ``source`` (after its docstring) between nbgrader's
    ``### BEGIN SOLUTION`` and ``### END SOLUTION``; generate_assignment replaces it by a stub
    (``raise NotImplementedError()``) that keeps the signature and the docstring."""
    tree = ast.parse(source)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        raise CourseworkError(f"a solution must be one function; got:\n{source[:200]}")
    body = tree.body[0].body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
        and isinstance(body[0].value.value, str)
    if has_doc and len(body) == 1:
        raise CourseworkError(f"{tree.body[0].name}: a docstring and no body to hide")
    first = body[1] if has_doc else body[0]
    lines = source.rstrip("\n").split("\n")
    start = min([first.lineno] + [d.lineno for d in getattr(first, "decorator_list", [])]) - 1
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    marked = lines[:start] + [f"{indent}### BEGIN SOLUTION"] + lines[start:] + [f"{indent}### END SOLUTION"]
    return "\n".join(marked)


# --------------------------------------------------------------------------------------------
# Template -> source notebook


def _assigned(source: str) -> list[str]:
    """The names a cell of plain assignments sets."""
    return [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)]


def _nbgrader(grade_id: str, solution: bool) -> dict:
    return {"grade": False, "solution": solution, "locked": not solution, "grade_id": grade_id,
            "schema_version": SCHEMA, "task": False}


def read_template(name: str) -> nbformat.NotebookNode:
    path = TEMPLATES / f"{name}.ipynb"
    if not path.is_file():
        raise CourseworkError(f"no assignment {name!r}: expected {path}; known: {', '.join(templates())}")
    return nbformat.read(path, as_version=4)


def size_parameters(name: str, size: str) -> dict:
    """The parameters that override the template's defaults for ``size`` (none for ``demo``)."""
    if size not in SIZES:
        raise CourseworkError(f"size={size!r}: use one of {', '.join(SIZES)}")
    if size == "demo":
        return {}
    path = TEMPLATES / "params" / name / f"{size}.yaml"
    if not path.is_file():
        raise CourseworkError(f"{name}: no {size} parameters; expected {path}")
    return yaml.safe_load(path.read_text()) or {}


def source_notebook(name: str, size: str = "demo") -> nbformat.NotebookNode:
    """The template ``name`` with its solutions and given code filled in from the study and its
    parameters set for ``size``: what nbgrader calls the source version."""
    from papermill.translators import translate_parameters

    nb = read_template(name)
    for cell in nb.cells:
        spec = cell.metadata.get("coursework")
        if not spec:
            continue
        kind = "solution" if "solution" in spec else "given"
        if kind not in spec:
            raise CourseworkError(f"{name}: cell metadata coursework={spec}: expected 'solution' or 'given'")
        ref = spec[kind]
        code = function_source(ref)
        fn = ref.partition(":")[2]
        if kind == "solution":
            cell.source = mark_solution(code)
            cell.metadata["nbgrader"] = _nbgrader(fn, solution=True)
        else:
            cell.source = code.rstrip("\n")
            cell.metadata["nbgrader"] = _nbgrader(f"given_{fn}", solution=False)
    params = size_parameters(name, size)
    if params:  # papermill's way: a cell after the parameters cell that overrides them
        where = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        if len(where) != 1:
            raise CourseworkError(f"{name}: the template needs exactly one cell tagged 'parameters'")
        unknown = set(params) - set(_assigned(nb.cells[where[0]].source))
        if unknown:
            raise CourseworkError(f"{name}: {size}.yaml sets {', '.join(sorted(unknown))}, which the "
                                  "parameters cell does not have")
        source = translate_parameters("python3", "python", params, f"Parameters of the {size} size")
        injected = nbformat.v4.new_code_cell(source.strip("\n"), metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(where[0] + 1, injected)
    nb.metadata.setdefault("coursework", {})["size"] = size
    return nb


# --------------------------------------------------------------------------------------------
# The course folder


def _nbgrader_config() -> str:
    """nbgrader's settings for the course folder (its root is the folder nbgrader runs in)."""
    return (f"# written by `python -m lib coursework`; see README.md in this folder\n"
            f"c = get_config()  # noqa: F821\n"
            f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
            f"c.ExecutePreprocessor.timeout = {CELL_TIMEOUT}\n")


def nbgrader_api(course: Path):
    """nbgrader's Python API on ``course`` (nbgrader runs ``alembic`` from the environment's
    ``bin`` folder, so that folder is put on ``PATH``)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.course_id = COURSE_ID
    config.ExecutePreprocessor.timeout = CELL_TIMEOUT
    config.Exchange.root = str(course / "exchange")
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _run_api(result: dict, what: str) -> None:
    if not result.get("success"):
        raise CourseworkError(f"nbgrader {what} failed:\n{result.get('error') or result.get('log')}")


def run_notebook(path: Path, allow_errors: bool = False, timeout: int = CELL_TIMEOUT) -> tuple[nbformat.NotebookNode, float]:
    """Execute ``path`` top to bottom in a scratch copy of its folder (the kernel's working
    directory); returns the executed notebook and the wall time in seconds."""
    from nbclient import NotebookClient

    from .kernels import private_kernel_config

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="coursework-") as tmp, private_kernel_config() as config:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                       resources={"metadata": {"path": tmp}}, config=config).execute()
        return nb, time.perf_counter() - start


@dataclass
class Assignment:
    name: str
    title: str
    paper: str
    section: str
    teaches: str
    solutions: list[str]  # REFs
    tests: list[tuple[str, float, bool]]  # (grade_id, points, has hidden tests)
    seconds: float | None = None  # solution run top to bottom (check)
    mutations: list[dict] = field(default_factory=list)
    size: str | None = None  # of the build that made the course's copy
    machine: str | None = None  # where ``seconds`` was measured

    @property
    def points(self) -> float:
        return sum(p for _, p, _ in self.tests)


def describe(name: str, nb: nbformat.NotebookNode | None = None) -> Assignment:
    """What the guide says about assignment ``name``, read from its template."""
    nb = nb or read_template(name)
    meta = nb.metadata.get("coursework", {})
    missing = [k for k in ("title", "paper", "section", "teaches") if k not in meta]
    if missing:
        raise CourseworkError(f"{name}: template metadata 'coursework' lacks {', '.join(missing)}")
    solutions = [c.metadata["coursework"]["solution"] for c in nb.cells
                 if "solution" in c.metadata.get("coursework", {})]
    tests = [(c.metadata["nbgrader"]["grade_id"], float(c.metadata["nbgrader"]["points"]),
              "BEGIN HIDDEN TESTS" in c.source)
             for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    return Assignment(name, meta["title"], meta["paper"], meta["section"], meta["teaches"],
                      solutions, tests, mutations=list(meta.get("mutations", [])))


def _course_folder(course: Path) -> Path:
    """``course`` (as given) made a folder and resolved, or a CourseworkError naming the file in its way."""
    blocker = next((p for p in (course, *course.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "is" if blocker == course else f"is under {blocker}, which is"
        raise CourseworkError(f"--course {course}: {where} a file, not a folder; give a folder for the "
                              "course (it is created if it does not exist)")
    try:
        course.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CourseworkError(f"--course {course}: cannot create the folder ({exc.strerror or exc}); give a "
                              "folder you can write to") from None
    return course.resolve()


def _write_config(course: Path, log) -> None:
    """Write ``nbgrader_config.py``, but never over a teacher's edits: a file that differs from what
    this build writes is kept, and the build's version goes beside it as ``nbgrader_config.py.new``
    (the build itself does not read the file: :func:`nbgrader_api` sets what it needs)."""
    config, text = course / "nbgrader_config.py", _nbgrader_config()
    if config.is_file() and config.read_text() != text:
        write_text(config.with_name(config.name + ".new"), text)
        log(f"kept your edited {config}; this build's version is {config}.new: merge what you need from it "
            "(nbgrader reads only nbgrader_config.py)")
        return
    write_text(config, text)


def build(course: str | os.PathLike, size: str = "demo", only: Sequence[str] | None = None,
          check: bool = False, log=print) -> list[Assignment]:
    """Write the course folder (see the module docstring) for the assignments ``only`` (all by
    default); with ``check``, run every solution top to bottom and fail on any error. A teacher's
    edited ``nbgrader_config.py`` is kept (see :func:`_write_config`)."""
    names = list(only) if only else templates()
    unknown = sorted(set(names) - set(templates()))
    if unknown:
        raise CourseworkError(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(templates())}")
    course = _course_folder(Path(course))
    _write_config(course, log)
    api = nbgrader_api(course)
    done = []
    for name in names:
        nb = source_notebook(name, size)
        target = course / "source" / name / f"{name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text(target, nbformat.writes(nb) + "\n")
        _run_api(api.generate_assignment(name, force=True, create=True), f"generate_assignment {name}")
        info = describe(name, read_template(name))
        if check:
            log(f"{name}: running the solution top to bottom ({size} size) ...")
            executed, info.seconds = run_notebook(target, allow_errors=True)
            failed = [e for c in executed.cells for e in c.get("outputs", []) if e.get("output_type") == "error"]
            if failed:
                raise CourseworkError(f"{name}: the solution notebook {target} fails: "
                                      f"{failed[0]['ename']}: {failed[0]['evalue']}")
        log(f"{name}: source/{name}, release/{name}"
            + (f", solution ran in {info.seconds:.0f} s" if info.seconds is not None else ""))
        done.append(info)
    # the guide covers every assignment in the folder, with the last measured time of each
    record = course / "coursework.json"
    runs = json.loads(record.read_text()) if record.is_file() else {}
    for info in done:
        runs[info.name] = {"size": size, "seconds": info.seconds, "machine": _cpu()}
    write_json(record, runs)
    present = [n for n in templates() if (course / "source" / n / f"{n}.ipynb").is_file()]
    described = []
    for n in present:
        info = describe(n)
        run = runs.get(n, {})
        info.seconds, info.size, info.machine = run.get("seconds"), run.get("size"), run.get("machine")
        described.append(info)
    write_text(course / "README.md", guide(described))
    return done


# --------------------------------------------------------------------------------------------
# The teacher's guide


def _cpu() -> str:
    """The CPU model and thread count, for the guide's times."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} threads, {platform.system()}"


def guide(assignments: Iterable[Assignment]) -> str:
    """The teacher's guide (``<course>/README.md``): what each assignment teaches, where in the
    paper, the measured time of its solution, and the nbgrader commands."""
    assignments = list(assignments)
    lines = [
        "# Coursework: the segmentation papers, written by students, graded by nbgrader",
        "",
        "Built by `make coursework` (`python -m lib coursework`) from the study's own code: each",
        "exercise's solution is the function the study runs (in `lib/` or in a study notebook),",
        "so what students write is checked against what makes the study's tables. Templates:",
        "`notebooks/coursework/`; edit those, then rebuild (never edit `source/` by hand).",
        "",
        "Size of the runs on real images: `demo` (the default: a few minutes on a laptop CPU) or",
        "`smoke` (seconds; the tests' size). Solution run: the source notebook executed top to",
        "bottom, kernel start included, when the build ran with `--check`.",
        "",
        "| assignment | paper, section | students write | tests (points) | size | solution run |",
        "|---|---|---|---|---|---|",
    ]
    machines = sorted({a.machine for a in assignments if a.seconds is not None and a.machine})
    for a in assignments:
        writes = ", ".join(f"`{r.partition(':')[2]}`" for r in a.solutions)
        tests = ", ".join(f"{g} ({p:g}{', hidden part' if h else ''})" for g, p, h in a.tests)
        when = f"{a.seconds:.0f} s" if a.seconds is not None else "not run"
        lines.append(f"| **{a.name}**: {a.title} | {a.paper}; {a.section} | {writes} | {tests} | "
                     f"{a.size or ''} | {when} |")
    lines += [""]
    if machines:
        lines += [f"Measured on: {'; '.join(machines)}.", ""]
    lines += ["## What each assignment teaches", ""]
    for a in assignments:
        lines += [f"### {a.name}: {a.title}", "",
                  f"*Paper:* {a.paper}. *From:* {a.section}.", "", a.teaches, "",
                  "Solutions come from: " + ", ".join(f"`{r}`" for r in a.solutions) + ".", ""]
    lines += [
        "## Grading with nbgrader",
        "",
        "Run these from this folder with the study's environment on `PATH` (from a checkout:",
        "`source ../.venv/bin/activate`; `jupyter lab` started here shows nbgrader's Formgrader):",
        "",
        "```bash",
        "# hand out release/<assignment>/<assignment>.ipynb (LMS, e-mail, or nbgrader's exchange)",
        "# put each student's notebook at submitted/<student>/<assignment>/<assignment>.ipynb, then",
        "nbgrader autograde kanezaki2018            # runs every submission, scores every test cell",
        "nbgrader generate_feedback kanezaki2018    # feedback/<student>/kanezaki2018/*.html",
        "nbgrader export                            # grades.csv: one row per student and assignment",
        "```",
        "",
        "Each test cell is worth its points: all or nothing. Visible tests give students fast",
        "feedback while they work; the hidden parts (removed from `release/`, restored by",
        "`autograde`) check edge cases and that the student's function agrees with the study's",
        "on random inputs. An untouched notebook scores 0. The study's library is installed in",
        "the students' environment, so a student could import the reference solution: the tests",
        "check behaviour, not authorship.",
        "",
        "Rebuild in the tests' size with `make coursework SIZE=smoke`; `python -m lib coursework",
        "--help` lists the options (one assignment, another folder).",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Grading (what the tests use; a teacher runs `nbgrader autograde` instead)


def mutate(source: nbformat.NotebookNode, mutations: Sequence[dict]) -> nbformat.NotebookNode:
    """A copy of the source notebook with each mutation's ``replace = [old, new]`` applied to the
    solution cell it names (``old`` must occur exactly once there)."""
    wrong = copy.deepcopy(source)
    for m in mutations:
        cells = [c for c in wrong.cells if c.metadata.get("nbgrader", {}).get("grade_id") == m["solution"]
                 and c.metadata["nbgrader"].get("solution")]
        if len(cells) != 1:
            raise CourseworkError(f"mutation {m}: no solution cell {m['solution']!r}")
        old, new = m["replace"]
        if cells[0].source.count(old) != 1:
            raise CourseworkError(f"mutation {m}: {old!r} must occur exactly once in {m['solution']}")
        cells[0].source = cells[0].source.replace(old, new)
    return wrong


def grade(course: str | os.PathLike, name: str,
          submissions: dict[str, nbformat.NotebookNode]) -> dict[str, dict[str, tuple[float, float]]]:
    """Put each ``student -> notebook`` at ``submitted/<student>/<name>/``, run ``nbgrader
    autograde`` and return ``{student: {grade_id: (score, max_score)}}``."""
    from nbgrader.api import Gradebook

    course = Path(course)
    api = nbgrader_api(course)
    for student, nb in submissions.items():
        folder = course / "submitted" / student / name
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / f"{name}.ipynb")
        _run_api(api.autograde(name, student, force=True, create=True), f"autograde {name} {student}")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s: {g.name: (g.score, g.max_score) for g in gb.find_submission_notebook(name, name, s).grades}
                for s in submissions}


def build_and_grade(course: str | os.PathLike, name: str, size: str = "smoke") -> dict:
    """Build assignment ``name`` into ``course`` and autograde three submissions: the solution,
    the untouched release and the solution with every mutation of the template applied.
    Returns the scores (see :func:`grade`)."""
    course = Path(course)
    build(course, size=size, only=[name], log=lambda *_: None)
    source = nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4)
    release = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
    wrong = mutate(source, describe(name).mutations)
    return grade(course, name, {"solution": source, "untouched": release, "wrong": wrong})
