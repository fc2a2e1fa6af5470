"""What a segmentation method looks like to the runner."""

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


C = TypeVar("C")


def variant_config(variant: str, forms: dict[str, Callable[[], C]], overrides: dict[str, Any]) -> C:
    """The configuration of a method's ``variant`` (``forms``: name -> its defaults), with the
    ``overrides`` that are not None applied (None keeps the form's value)."""
    if variant not in forms:
        raise ValueError(f"variant={variant!r}: use {' or '.join(repr(f) for f in forms)}")
    return replace(forms[variant](), **{k: v for k, v in overrides.items() if v is not None})


class Method(Protocol):
    #: family name shown in tables, e.g. "kanezaki2018", "k-means", "GS"
    name: str
    #: whether ``run`` can take several images of one size at once (batched models)
    batchable: bool
    #: whether the result depends on the seed (deterministic methods run once)
    stochastic: bool

    def params(self) -> dict[str, Any]:
        """Everything that changes the result: written beside each table, hashed for caching."""

    def label(self) -> str:
        """A short name for plots and tables, e.g. "kanezaki2018 paper M=2"."""

    def run(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device, progress: bool = False) -> list[Output]:
        """Segment ``images`` (uint8 RGB, all of one size when batched); one seed tuple per image."""


def loop_outputs(result: Any) -> list[Output]:
    """One :class:`Output` per image of a :class:`lib.loops.LoopResult`, with its label counts
    and losses per iteration as extras."""
    return [
        Output(labels=result.labels[b], iterations=int(result.iterations[b]),
               extras={"label_history": result.label_history[b], "loss_history": result.loss_history[b]})
        for b in range(len(result.labels))
    ]


def params_key(method: Method) -> str:
    """A folder name that changes whenever a parameter does: ``<name>-<12 hex digits>``."""
    blob = json.dumps({"name": method.name, **method.params()}, sort_keys=True, default=str)
    slug = "".join(c if c.isalnum() else "-" for c in method.name.lower())
    return f"{slug}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
