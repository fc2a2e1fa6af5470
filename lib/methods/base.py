"""What a segmentation method looks like to the runner (``lib/runs.py``).

A method has a ``name`` (the paper's key, e.g. "kanezaki2018", "kim2020", "k-means"), a ``form``
("paper", "code"; "" where it has one form only) and ``params()``, the typed settings that change
its result. Those three go into the runs table as columns, so notebooks and the join with the
papers' reported numbers select rows by value; ``label()`` is for reading only (plots, captions).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol, Sequence, TypeVar

import numpy as np
import torch


@dataclass
class Output:
    """One image's result: its label map and what the method reports about the run."""

    labels: np.ndarray  # (H, W) integer labels
    iterations: int = 0  # parameter updates (0 for non-iterative methods)
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. per-iteration label counts
    layout: str = ""  # the network's memory layout (lib/layout.py); "" without a network


C = TypeVar("C")


def form_config(form: str, forms: dict[str, Callable[[], C]], overrides: dict[str, Any]) -> C:
    """The configuration of a method's ``form`` (``forms``: name -> its defaults), with the
    ``overrides`` that are not None applied (None keeps the form's value)."""
    if form not in forms:
        raise ValueError(f"form={form!r}: use {' or '.join(repr(f) for f in forms)}")
    return replace(forms[form](), **{k: v for k, v in overrides.items() if v is not None})


class Method(Protocol):
    #: the paper's key, shown in tables and joined with the reported numbers: "kanezaki2018", "GS"
    name: str
    #: "paper" or "code" (the authors' code as it runs); "" for a method with one form
    form: str
    #: whether ``run`` can take several images of one size at once (batched models)
    batchable: bool
    #: whether the result depends on the seed (deterministic methods run once)
    stochastic: bool

    def params(self) -> dict[str, Any]:
        """Everything that changes the result, as typed values: columns of the runs table,
        hashed for caching."""

    def label(self) -> str:
        """A short name for plots and captions, e.g. "kanezaki2018 paper M=2" (never parsed)."""

    def run(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device,
            progress: bool = False) -> list[Output]:
        """Segment ``images`` (uint8 RGB, all of one size when batched); one seed tuple per image."""


def loop_outputs(result: Any) -> list[Output]:
    """One :class:`Output` per image of a :class:`lib.loops.LoopResult`, with its label counts
    and losses per iteration as extras."""
    return [
        Output(labels=result.labels[b], iterations=int(result.iterations[b]), layout=result.layout,
               extras={"label_history": result.label_history[b], "loss_history": result.loss_history[b]})
        for b in range(len(result.labels))
    ]


def columns(method: Method) -> dict[str, Any]:
    """The runs-table columns that identify ``method``: name, form, label, then its parameters."""
    return {"method": method.name, "form": method.form, "label": method.label(), **method.params()}


def params_key(method: Method) -> str:
    """A folder name that changes whenever a parameter does: ``<name>-<12 hex digits>``."""
    blob = json.dumps({"name": method.name, **method.params()}, sort_keys=True, default=str)
    slug = "".join(c if c.isalnum() else "-" for c in method.name.lower())
    return f"{slug}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
