"""Every notebook parameter's range, checked once and in one place before any work starts.

A notebook run (``study.setup``), a cluster job (``python -m lib shard``, the Snakefile and its
``--configfile``) and ``python -m lib notebook`` all call :func:`check`: a parameter name the
notebook does not declare, a value of another type than its declaration, or a value out of its
range is a :class:`ParameterError` that names the parameter, the value and what is expected.
One name means one thing everywhere, so a range is written once per name (:data:`RULES`);
where notebooks of different papers give a name different choices (``forms``), :data:`FORMS`
lists each notebook's (a test holds them to the papers' own modules; they are written here so
that checking needs no PyTorch import). Floats must be finite: a NaN or infinite weight would
train silently into NaN losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence


class ParameterError(ValueError):
    """A notebook or command-line parameter with a bad value; the message names it."""


@dataclass(frozen=True)
class Rule:
    """What a value must be: ``ok(value)``, and the words that say so in an error."""

    ok: Callable[[Any], bool]
    expected: str
    values: tuple = ()  # the allowed values of a choice or subset


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return (_int(v) or isinstance(v, float)) and math.isfinite(v)


def integer(low: int, high: int | None = None, what: str = "") -> Rule:
    above = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    return Rule(lambda v: _int(v) and v >= low and (high is None or v <= high), above + (f" ({what})" if what else ""))


def number(low: float, high: float | None = None, *, open_low: bool = False, what: str = "") -> Rule:
    """A finite number in [low, high] (or (low, high] with ``open_low``)."""
    lower = f"> {low:g}" if open_low else f">= {low:g}"
    text = f"a finite number {lower}" + (f" and <= {high:g}" if high is not None else "")
    return Rule(lambda v: _number(v) and (v > low if open_low else v >= low) and (high is None or v <= high),
                text + (f" ({what})" if what else ""))


def choice(*values: Any) -> Rule:
    return Rule(lambda v: v in values, "one of " + ", ".join(map(repr, values)), values)


def subset(*values: Any, empty: bool = False) -> Rule:
    """A list of distinct values from ``values`` (non-empty unless ``empty``)."""
    return Rule(lambda v: isinstance(v, list) and (empty or len(v) > 0) and len(set(map(repr, v))) == len(v)
                and all(x in values for x in v),
                f"a {'' if empty else 'non-empty '}list of distinct values from {list(values)}", values)


def list_of(rule: Rule, *, empty: bool = False, distinct: bool = True) -> Rule:
    return Rule(lambda v: isinstance(v, list) and (empty or len(v) > 0) and all(rule.ok(x) for x in v)
                and (not distinct or len(set(map(repr, v))) == len(v)),
                f"a {'' if empty else 'non-empty '}list of{' distinct' if distinct else ''} values, each {rule.expected}")


def optional(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.ok(v), f"None or {rule.expected}")


def either(a: Rule, b: Rule) -> Rule:
    return Rule(lambda v: a.ok(v) or b.ok(v), f"{a.expected}, or {b.expected}")


def per_form(forms: Sequence[str], rule: Rule) -> Rule:
    """A mapping of each form to a value: ``{"paper": 500, "code": 1000}``."""
    return Rule(lambda v: isinstance(v, dict) and set(v) <= set(forms) and all(rule.ok(x) for x in v.values()),
                f"a mapping of forms ({', '.join(forms)}) to {rule.expected}")


POSITIVE = integer(1)
COUNT = integer(-1, what="the first N, -1 for all, 0 for none")
WEIGHT = number(0)
FOLDER = optional(Rule(lambda v: isinstance(v, str) and v != "", "a folder path"))
SIDE = integer(16, what="pixels")
CROP = Rule(lambda v: _int(v) and v >= 16 and v % 16 == 0, "a multiple of 16 (G halves the size four times)")
SIZE = Rule(lambda v: isinstance(v, list) and len(v) == 2 and all(_int(x) and x >= 16 for x in v),
            "[height, width], each an integer >= 16")

#: the ranges of the parameters that mean the same in every notebook that has them
RULES: dict[str, Rule] = {
    "profile": choice("smoke", "demo", "paper"),
    "seeds": list_of(integer(0, 2**31 - 1)),
    "device": Rule(lambda v: isinstance(v, str) and (v in ("auto", "cpu") or v == "cuda"
                                                     or (v.startswith("cuda:") and v[5:].isdigit())),
                   "'auto', 'cpu' or 'cuda[:n]'"),
    "max_side": optional(SIDE),
    "data_root": FOLDER,
    "results_dir": FOLDER,
    "missing_data": Rule(lambda v: v in ("fail", "skip"), "'fail' (a requested dataset that is absent stops the "
                         "run) or 'skip' (the run goes on without it, and every caption says so)"),
    "progress": Rule(lambda v: isinstance(v, bool), "True or False"),
    "batch_size": integer(0, what="0: the device's default"),
    # images
    "synthetic_images": integer(0, what="0: none"),
    "synthetic_size": SIZE,
    "bsds_images": COUNT, "voc_images": COUNT, "ph2_images": COUNT, "lung_images": COUNT,
    "pet_images": COUNT, "animal_images": COUNT, "stanford_images": COUNT,
    "bsds_split": choice("train", "val", "test"),
    "voc_ground_truth": choice("object", "class"),
    "voc_void": choice("drop", "keep"),
    "animal_classes": optional(list_of(Rule(lambda v: isinstance(v, str) and v != "", "a class name"))),
    "photos": subset("astronaut", "chelsea", "coffee", "rocket"),
    # the per-image methods
    "form": choice("paper", "code"),
    "n_layers": either(POSITIVE, list_of(POSITIVE)),
    "depths": list_of(POSITIVE),
    "kim_mu": number(0, open_low=True),
    "dynamic": list_of(Rule(lambda v: isinstance(v, list) and len(v) == 2 and v[0] in ("fsf", "scf")
                            and _number(v[1]) and v[1] > 0, "[scheme, mu]: fsf or scf and a finite mu > 0")),
    "continuity": choice("l1", "smooth_l1"),
    "kanezaki_form": choice("paper", "code"),
    "kanezaki_layers": POSITIVE,
    "fixed_mu": list_of(number(0, open_low=True), empty=True),
    "fsf_mu": list_of(number(0, open_low=True), empty=True),
    "scf_mu": list_of(number(0, open_low=True), empty=True),
    "kmeans_windows": list_of(Rule(lambda v: _int(v) and v >= 1 and v % 2 == 1, "an odd integer >= 1")),
    "kmeans_ks": list_of(integer(2)),
    "kmeans_k": integer(2),
    "gs_scales": list_of(number(0, open_low=True)),
    "code_size": SIDE,
    "dilation": integer(0),
    "min_interior": number(0, 1),
    "loss_forms": subset("paper", "code"),
    # JigsawGAN
    "tiles": subset(4, 9, empty=True),
    "trunks": subset("trainable", "frozen"),
    "pretrain_epochs": POSITIVE,
    "finetune_epochs": POSITIVE,
    "alpha": WEIGHT,
    "beta": WEIGHT,
    "fractions": list_of(number(0, 1, open_low=True)),
    # SegGAN
    "generator_inputs": subset("mask+image", "mask"),
    "lambda_content": WEIGHT,
    "lambda_adversarial": WEIGHT,
    "lambdas": list_of(WEIGHT),
    "adversarial": choice("minimax", "non-saturating"),
    "gan_iterations": POSITIVE,
    "batch": POSITIVE,
    "crop": either(CROP, Rule(lambda v: isinstance(v, dict) and len(v) > 0 and all(CROP.ok(x) for x in v.values()),
                              "a mapping of dataset names to such sides")),
    "checkpoint_every": POSITIVE,
    "batchnorm": choice("train", "frozen"),
    "weights": Rule(lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) and x
                                                          for k, x in v.items()),
                    "a mapping of dataset names to a weights name or file"),
    "backbone": Rule(lambda v: isinstance(v, str), "a DeepLabV3 backbone name"),  # refined in rules()
}

#: the parameters that change no number by design, and what they change instead (every other
#: parameter changes what a notebook computes, ``lib.plans.work``: a test checks it)
NOT_IN_RESULTS = {
    "profile": "the results folder and every caption's profile; the values come from the other parameters",
    "device": "where it runs; results differ by rounding only, and every record stores its device",
    "batch_size": "how many images run at once; results differ by rounding only, and records store it",
    "progress": "progress bars",
    "data_root": "where the datasets are read from; the records fingerprint every image they were computed on",
    "results_dir": "where tables and figures are written",
    "missing_data": "what a run does when a requested dataset is absent: stop, or go on and say so in every caption",
    "checkpoint_every": "how often a training is checkpointed; a resumed run gives the same numbers "
                        "(tests/test_epochs.py)",
    "photos": "the photographs of Kanezaki 2018's Fig. 2 (no ground truth: a figure only)",
}

#: the forms each notebook's methods have (``forms`` lists some of them)
FORMS = {"kanezaki2018": ("paper", "code"), "kanezaki2018_depth": ("paper", "code"), "dynamicseg": ("paper", "code"),
         "s3net": ("paper", "code"), "s3net_losses": ("paper", "code"), "jigsawgan": ("code", "corrected"),
         "jigsawgan_datasize": ("code", "corrected")}


def rules(notebook: str) -> dict[str, Rule]:
    """:data:`RULES`, with what differs by notebook: the forms it runs, and ``iterations``
    (one count, or a count per form)."""
    out = dict(RULES)
    forms = FORMS.get(notebook, ("paper", "code"))
    out["forms"] = subset(*forms)
    out["iterations"] = either(POSITIVE, per_form(forms, POSITIVE))
    if notebook.startswith("seggan"):
        from .models.seggan import BACKBONES

        out["backbone"] = choice(*BACKBONES)
    return out


def type_hint(value: Any, kinds: Sequence[type]) -> str:
    """Why a text where a list, mapping or number is expected: papermill's ``-p`` passes text."""
    if isinstance(value, str) and any(k in (list, dict, int, float, bool) for k in kinds):
        return (" (it is the text {!r}: papermill's -p passes its value as text; pass YAML with -y, e.g. "
                "-y '<name>: <value>', or a parameters file with -f; python -m lib notebook/shard -p reads "
                "YAML)").format(value)
    return ""


def _together(values: Mapping[str, Any]) -> None:
    """Ranges that involve two parameters."""
    forms, iterations = values.get("forms"), values.get("iterations")
    if isinstance(forms, list) and isinstance(iterations, dict) and not set(forms) <= set(iterations):
        raise ParameterError(f"parameter iterations={iterations!r}: expected a count for each form of "
                             f"forms={forms!r}")


def check(notebook: str, values: Mapping[str, Any], declared: Mapping[str, Any] | None = None) -> None:
    """Check ``values`` (name -> value) of ``notebook``: each name declared by the notebook's
    parameters cell (``declared``: ``study.declared_parameters``), of a declared type, and in its
    range (:func:`rules`). Raises :class:`ParameterError` naming the first bad one."""
    if declared is None:
        from .study import declared_parameters

        declared = declared_parameters(notebook)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ParameterError(f"{notebook}: unknown parameter(s) {', '.join(unknown)}; this notebook's parameters "
                             f"are: {', '.join(declared)}")
    known = rules(notebook)
    for name, value in values.items():
        d = declared[name]
        if d.types != (type(None),) and not _type_ok(value, d.types):
            kinds = " or ".join("None" if t is type(None) else t.__name__ for t in d.types)
            raise ParameterError(f"parameter {name}={value!r}: expected {kinds} like the default {d.default!r} "
                                 f"({d.comment}){type_hint(value, d.types).replace('<name>', name)}")
        rule = known.get(name)
        if rule is not None and not rule.ok(value):
            raise ParameterError(f"parameter {name}={value!r}: expected {rule.expected} ({d.comment})")
    _together(values)


def _type_ok(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True  # an integer where a float is expected
    return isinstance(value, allowed)
