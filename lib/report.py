"""Writing results: tables (csv + markdown + LaTeX), figures (png + pdf), ``metrics.json``,
and the index ``results/README.md`` that gathers every table of every notebook and profile.

Every table carries a caption that states the profile, the dataset (and subset), the
evaluation protocol and the seeds that made it; the caption is written into the markdown and
LaTeX files and into ``metrics.json`` beside the table's file names.
"""

from __future__ import annotations

import io as _io
import json
from pathlib import Path
from typing import Any, Sequence

import sys

import matplotlib

if "ipykernel" not in sys.modules:  # headless; in a notebook the inline backend shows the figures
    matplotlib.use("Agg")  # savefig draws with Agg either way: the same pixels everywhere
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .files import atomic_write, remove_orphans, write_json, write_text  # noqa: E402


#: what a caption says about the paper's number, by whether the run has the paper's setting
COMPARABLE = {
    True: "This run has the paper's setting (images, resolution, iterations): diff = ours - paper.",
    False: "This run differs from the paper's setting (images, resolution or iterations), so the paper's "
           "number is context, not a target, and no difference is printed.",
}


def caption(title: str, *, profile: str, dataset: str, protocol: str, seeds: Sequence[int] | str, notes: str = "",
            settings: dict[str, Any] | None = None, paper: str | None = None, comparable: bool | None = None,
            absent: Sequence[str] = ()) -> str:
    """``title. Profile. Dataset. Protocol. Seeds. [Settings.] [Paper: ... comparable or not.] notes
    [Absent: the requested datasets this run went without, and why.]``."""
    seeds_txt = seeds if isinstance(seeds, str) else ", ".join(map(str, seeds))
    parts = [f"{title}.", f"Profile: {profile}.", f"Dataset: {dataset}.", f"Protocol: {protocol}.", f"Seeds: {seeds_txt}."]
    if settings:
        parts.append("Settings: " + ", ".join(f"{k} = {v!r}" for k, v in settings.items()) + ".")
    if paper:
        parts.append(f"Paper: {paper}")
        if comparable is not None:
            parts.append(COMPARABLE[comparable])
    if notes:
        parts.append(notes)
    if absent:
        parts.append(absent_note(absent))
    return " ".join(parts)


def absent_note(absent: Sequence[str]) -> str:
    """The sentence every caption of a run carries when a requested dataset was absent."""
    return f"Absent from this run (missing_data = 'skip'): {'; '.join(absent)}."


#: columns of a runs table that hold a method's settings, printed as given
SETTINGS = ("mu", "n_layers", "k", "window", "scale", "size", "iterations", "lambda_content",
            "lambda_adversarial")


def settings_columns(df: pd.DataFrame) -> list[str]:
    """The numeric settings columns of ``df`` (see :data:`SETTINGS`)."""
    return [c for c in SETTINGS if c in df.columns and pd.api.types.is_float_dtype(df[c])]


def file_name(name: str) -> str:
    """A table or figure name as a file name: a dataset's "bsds500/test" becomes "bsds500_test"."""
    return name.replace("/", "_")


class Report:
    """The outputs of one notebook run in ``results/<profile>/<notebook>/``."""

    def __init__(self, folder: str | Path, notebook: str, profile: str, parameters: dict[str, Any] | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.notebook, self.profile = notebook, profile
        self._clear()
        self.meta: dict[str, Any] = {
            "notebook": notebook, "profile": profile, "parameters": parameters or {}, "complete": False,
            "datasets": {}, "absent": {}, "tables": {}, "figures": {}, "metrics": {},
        }
        self._save()

    def _clear(self) -> None:
        """Remove what an earlier run of this notebook wrote here (the files its ``metrics.json``
        names) and temporary files of killed runs, so that a rerun leaves the folder as a clean
        run would; the run cache lives elsewhere and is kept."""
        remove_orphans(self.folder)
        try:
            earlier = json.loads((self.folder / "metrics.json").read_text())
        except (OSError, ValueError):
            return
        for entry in (*earlier.get("tables", {}).values(), *earlier.get("figures", {}).values()):
            for name in entry.get("files", []):
                if Path(name).name == name:  # a plain file name of this folder, nothing else
                    (self.folder / name).unlink(missing_ok=True)

    def _save(self) -> None:
        write_json(self.folder / "metrics.json", self.meta)

    def datasets(self, used: dict[str, int], absent: dict[str, str]) -> None:
        """Record the datasets this run evaluates on (images of each) and the requested ones it
        goes without (why): every later caption names the latter."""
        self.meta["datasets"].update(used)
        self.meta["absent"].update(absent)
        self._save()

    def complete(self) -> None:
        """Mark the run complete: its last cell ran."""
        self.meta["complete"] = True
        self._save()

    def table(
        self,
        df: pd.DataFrame,
        name: str,
        title: str,
        *,
        dataset: str,
        protocol: str,
        seeds: Sequence[int] | str,
        notes: str = "",
        settings: dict[str, Any] | None = None,
        paper: str | None = None,
        comparable: bool | None = None,
        comparison: bool = False,
        float_format: str = "{:.4f}",
    ) -> pd.DataFrame:
        """Write ``df`` as ``<name>.csv/.md/.tex`` (see :func:`caption` for the caption);
        ``comparison=True`` puts it in the results index."""
        name = file_name(name)
        cap = caption(title, profile=self.profile, dataset=dataset, protocol=protocol, seeds=seeds, notes=notes,
                      settings=settings, paper=paper, comparable=comparable, absent=list(self.meta["absent"].values()))
        with atomic_write(self.folder / f"{name}.csv", "w") as f:
            df.to_csv(f, index=False)
        shown = df.map(lambda v: "" if v is pd.NA or (isinstance(v, float) and v != v)
                       else float_format.format(v) if isinstance(v, float) else v)  # missing -> blank
        for column in settings_columns(df):  # a setting such as mu = 5 reads "5", not "5.0000"
            shown[column] = df[column].map(lambda v: "" if v != v else f"{v:g}")
        md = shown.to_markdown(index=False, disable_numparse=True)
        write_text(self.folder / f"{name}.md", f"**{title}**\n\n{md}\n\n{cap}\n")
        tex = shown.to_latex(index=False, escape=True, caption=_latex_escape(cap), label=f"tab:{self.notebook}:{name}")
        write_text(self.folder / f"{name}.tex", tex)
        self.meta["tables"][name] = {
            "title": title, "caption": cap, "comparison": comparison,
            "files": [f"{name}.csv", f"{name}.md", f"{name}.tex"],
        }
        self._save()
        return df

    def show(self, name: str):
        """The written table as the notebook should display it: title, table and caption."""
        from IPython.display import Markdown

        return Markdown((self.folder / f"{file_name(name)}.md").read_text())

    def figure(self, fig: plt.Figure, name: str, title: str) -> None:
        """Write ``<name>.png`` and ``<name>.pdf`` with no time stamp or version in their metadata."""
        name = file_name(name)
        for fmt, metadata in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None, "Creator": None})):
            with atomic_write(self.folder / f"{name}.{fmt}", "wb") as f:
                fig.savefig(f, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        self.meta["figures"][name] = {"title": title, "files": [f"{name}.png", f"{name}.pdf"]}
        self._save()

    def metrics(self, **values: Any) -> None:
        """Record headline numbers in ``metrics.json`` (for the index and for machines)."""
        self.meta["metrics"].update(values)
        self._save()


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


def build_index(results_root: str | Path) -> str:
    """The text of ``results/README.md``: every table of every run, comparisons in full. A run
    whose last cell did not run is marked incomplete (its comparisons are listed, not shown);
    a requested dataset a run went without is named."""
    root = Path(results_root)
    out = _io.StringIO()
    out.write("# Results\n\nGenerated by `make results` (or `snakemake`) from the notebooks; do not edit by hand.\n")
    out.write("Each table states the profile, dataset, evaluation protocol and seeds that produced it.\n")
    runs = sorted(root.glob("*/*/metrics.json"))
    if not runs:
        out.write("\nNo results yet: run `make results`.\n")
    for profile in sorted({p.parent.parent.name for p in runs}):
        out.write(f"\n## Profile `{profile}`\n")
        for path in (p for p in runs if p.parent.parent.name == profile):
            _index_run(out, root, path)
    return out.getvalue()


def _index_run(out: _io.StringIO, root: Path, path: Path) -> None:
    try:
        meta = json.loads(path.read_text())
    except ValueError as exc:
        out.write(f"\n### `{path.parent.name}`: unreadable {path.relative_to(root)} ({exc})\n")
        return
    rel = path.parent.relative_to(root)
    complete = meta.get("complete", False)
    executed = path.parent / f"{rel.name}.ipynb"
    # papermill writes the executed notebook after the last cell: one older than metrics.json is
    # from an earlier run (the notebook was rerun since, e.g. in JupyterLab)
    fresh = complete and executed.is_file() and executed.stat().st_mtime >= path.stat().st_mtime
    link = f" ([executed notebook]({rel}/{rel.name}.ipynb))" if fresh else ""
    out.write(f"\n### `{meta.get('notebook', rel.name)}`{link}\n")
    if not complete:
        log = f" (see [its log]({rel}/papermill.log))" if (path.parent / "papermill.log").is_file() else ""
        out.write(f"\n**Incomplete run**: it stopped before its last cell{log}; the tables it wrote are listed, "
                  "not shown, and may be partial. Run the notebook again: it resumes from the cache.\n")
    if meta.get("absent"):
        out.write("\n" + absent_note(list(meta["absent"].values())) + "\n")
    for name, t in meta.get("tables", {}).items():
        if complete and t.get("comparison") and (path.parent / f"{name}.md").is_file():
            out.write("\n" + (path.parent / f"{name}.md").read_text())
        else:
            out.write(f"\n- [{t['title']}]({rel}/{name}.md) — {t['caption']}\n")
    figs = meta.get("figures", {})
    if figs:
        out.write("\nFigures: " + ", ".join(f"[{f['title']}]({rel}/{n}.png)" for n, f in figs.items()) + "\n")


def write_index(results_root: str | Path) -> Path:
    path = Path(results_root) / "README.md"
    write_text(path, build_index(results_root))
    return path
