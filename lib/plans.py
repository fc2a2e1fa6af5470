"""What each notebook runs, as data: its configurations, its images, its evaluator.

A per-image notebook builds its configurations by calling the function named after it here,
with its own parameters, and runs them with ``runs.run_grid``. The cluster workflow
(``lib/shards.py``, the Snakefile) calls the same function with the same parameter file to cut
the work into jobs, so there is one list of configurations, not two to keep in step. A
dataset-level notebook (JigsawGAN, SegGAN) builds its training settings the same way.

The functions' arguments are the notebooks' parameter names, so :func:`grids` and :func:`work`
can call each with a parameter dictionary (a profile's YAML file merged over the parameters
cell). :func:`work` describes everything a notebook computes; a test changes each parameter in
turn and checks that the description changes or that the value is refused, so that no
parameter is ever accepted and ignored (``lib.parameters.NOT_IN_RESULTS`` lists the few that by
design change no number, and why).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from . import study
from .evaluation import Evaluator, LesionEvaluator, RegionEvaluator
from .methods import Blank, DynamicSeg, Felzenszwalb, Kanezaki2018, KMeansWindows, Kim2020, S3Net
from .runs import Grid


def baselines(kmeans_windows: Sequence[int], kmeans_ks: Sequence[int], gs_scales: Sequence[float]) -> Grid:
    """The comparison rows of Kanezaki 2018's Table 1 and Kim 2020's Table I: k-means on a x a
    RGB windows for every k, Felzenszwalb-Huttenlocher for every scale, and the blank map."""
    methods = ([KMeansWindows(a, k) for a in kmeans_windows for k in kmeans_ks]
               + [Felzenszwalb(b) for b in gs_scales] + [Blank()])
    return Grid("baselines", tuple(methods), gpu=False)


def kanezaki2018(forms: Sequence[str], n_layers: Sequence[int], iterations: Mapping[str, int],
                 kmeans_windows: Sequence[int], kmeans_ks: Sequence[int],
                 gs_scales: Sequence[float]) -> tuple[Grid, Grid]:
    """Kanezaki 2018, Table 1: the method in each form and depth M, then the baselines."""
    cnn = [Kanezaki2018(form=f, n_layers=m, iterations=iterations[f]) for f in forms for m in n_layers]
    return Grid("kanezaki2018", tuple(cnn), keep_labels=True), baselines(kmeans_windows, kmeans_ks, gs_scales)


def kanezaki2018_depth(forms: Sequence[str], depths: Sequence[int], iterations: Mapping[str, int]) -> tuple[Grid]:
    """Kanezaki 2018 against its depth M (the paper's Sec. 4 varies M from 1 to 5)."""
    return (Grid("depths", tuple(Kanezaki2018(form=f, n_layers=m, iterations=iterations[f])
                                 for f in forms for m in depths), keep_labels=True),)  # as kanezaki2018: shared


def dynamicseg(forms: Sequence[str], iterations: Mapping[str, int], n_layers: int, kim_mu: float,
               dynamic: Sequence[Sequence[Any]], continuity: str, kanezaki_form: str, kanezaki_layers: int,
               kmeans_windows: Sequence[int], kmeans_ks: Sequence[int],
               gs_scales: Sequence[float]) -> tuple[Grid, Grid]:
    """DynamicSeg Table I (with Kim et al. 2020's columns): the CNN + superpixels row
    (Kanezaki 2018), Kim et al.'s fixed weight and DynamicSeg's schemes in each form, then the
    baselines."""
    cnn = [Kanezaki2018(form=kanezaki_form, n_layers=kanezaki_layers, iterations=iterations.get(kanezaki_form, 100))]
    cnn += [Kim2020(kim_mu, form=f, n_layers=n_layers, iterations=iterations[f], continuity=continuity)
            for f in forms]
    cnn += [DynamicSeg(sc, m, form=f, n_layers=n_layers, iterations=iterations[f], continuity=continuity)
            for f in forms for sc, m in dynamic]
    return Grid("CNN rows", tuple(cnn), keep_labels=True), baselines(kmeans_windows, kmeans_ks, gs_scales)


def dynamicseg_mu(form: str, n_layers: int, iterations: int, continuity: str, fixed_mu: Sequence[float],
                  fsf_mu: Sequence[float], scf_mu: Sequence[float]) -> tuple[Grid]:
    """DynamicSeg Fig. 2: Kim et al.'s fixed weight and both dynamic schemes over their mu grids."""
    kw = dict(form=form, n_layers=n_layers, iterations=iterations, continuity=continuity)
    methods = ([Kim2020(mu, **kw) for mu in fixed_mu] + [DynamicSeg("fsf", mu, **kw) for mu in fsf_mu]
               + [DynamicSeg("scf", mu, **kw) for mu in scf_mu])
    return (Grid("mu sweep", tuple(methods)),)


def s3net(forms: Sequence[str], iterations: int, code_size: int, kmeans_k: int) -> tuple[Grid, Grid]:
    """S3-Net Table 1: the method in each form (the code form at its fixed square size), then
    k-means on RGB and the blank map."""
    size = {"paper": None, "code": code_size}  # the code form's fixed square input
    cnn = Grid("S3-Net", tuple(S3Net(form=f, iterations=iterations, size=size[f]) for f in forms), keep_labels=True)
    return cnn, Grid("baselines", (KMeansWindows(1, kmeans_k), Blank()), gpu=False)


#: S3-Net's loss combinations: (use_at, use_s) = CE alone, + L_AT, + L_S, + both (Table 3)
LOSS_COMBINATIONS = [(False, False), (True, False), (False, True), (True, True)]


def s3net_losses(forms: Sequence[str], loss_forms: Sequence[str], iterations: int, code_size: int) -> tuple[Grid]:
    """S3-Net Table 3: every combination of its losses, in each form and loss form (CE alone
    has no loss form)."""
    size = {"paper": None, "code": code_size}
    methods = [S3Net(form=form, loss_form=loss_form, use_at=at, use_s=s, iterations=iterations, size=size[form])
               for form in forms for at, s in LOSS_COMBINATIONS
               for loss_form in (loss_forms if at or s else loss_forms[:1])]
    return (Grid("loss combinations", tuple(methods)),)


def _region_sets(p: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {name: names for name, names in (
        ("synthetic", ("synthetic_images", "synthetic_size")),
        (f"bsds500/{p.get('bsds_split', 'test')}", ("bsds_images", "bsds_split", "data_root")),
        ("voc2012", ("voc_images", "voc_ground_truth", "voc_void", "data_root"))) if p.get(names[0], 0)}


def _lesion_sets(p: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {name: names for name, names in (
        ("synthetic_lesions", ("synthetic_images", "synthetic_size")), ("ph2", ("ph2_images", "data_root")),
        ("lung_ct", ("lung_images", "data_root"))) if p.get(names[0], 0)}


def _region_images(p: Mapping[str, Any], missing: str, require: bool = True) -> study.Opened:
    return _call(study.evaluation_sets, p, missing=missing, require=require)


def _lesion_images(p: Mapping[str, Any], missing: str, require: bool = True) -> study.Opened:
    counts = {name: p[parameter] for name, (_, _, parameter) in study.LESION_DATASETS.items() if parameter in p}
    return study.lesion_sets(synthetic_images=p["synthetic_images"], synthetic_size=p["synthetic_size"],
                             data_root=p.get("data_root"), missing=missing, require=require, **counts)


@dataclass(frozen=True)
class Plan:
    """A per-image notebook: how it builds its grids, opens its images and scores them."""

    grids: Callable[..., tuple[Grid, ...]]
    images: Callable[..., study.Opened]  # (parameters, missing_data, require=True)
    evaluator: Callable[[Mapping[str, Any]], Evaluator]
    #: parameters -> the image sets ``images`` opens (as ``Opened.sets`` names them), each with the
    #: parameters that choose its images; known without reading any image
    sets: Callable[[Mapping[str, Any]], dict[str, tuple[str, ...]]]


_REGIONS = {"images": _region_images, "evaluator": lambda p: RegionEvaluator(), "sets": _region_sets}
_LESIONS = {"images": _lesion_images, "sets": _lesion_sets,
            "evaluator": lambda p: LesionEvaluator(dilation=p["dilation"], min_interior=p["min_interior"])}
PLANS: dict[str, Plan] = {
    "kanezaki2018": Plan(kanezaki2018, **_REGIONS),
    "kanezaki2018_depth": Plan(kanezaki2018_depth, **_REGIONS),
    "dynamicseg": Plan(dynamicseg, **_REGIONS),
    "dynamicseg_mu": Plan(dynamicseg_mu, **_REGIONS),
    "s3net": Plan(s3net, **_LESIONS),
    "s3net_losses": Plan(s3net_losses, **_LESIONS),
}


def _call(function: Callable[..., Any], p: Mapping[str, Any], **extra: Any) -> Any:
    """``function`` with the parameters its signature names taken from ``p``."""
    names = inspect.signature(function).parameters
    return function(**{k: p[k] for k in names if k in p and k not in extra}, **extra)


def grids(notebook: str, p: Mapping[str, Any]) -> tuple[Grid, ...]:
    """The grids ``notebook`` runs with parameters ``p``."""
    if notebook not in PLANS:
        raise ValueError(f"{notebook!r} is not a per-image notebook; these are: {', '.join(PLANS)}")
    return _call(PLANS[notebook].grids, p)


# --------------------------------------------------------------------------------------------
# the dataset-level notebooks: the trainings they run


def seggan(seeds: Sequence[int], generator_inputs: Sequence[str], lambda_content: float, lambda_adversarial: float,
           adversarial: str, iterations: int, gan_iterations: int, batch: int, backbone: str,
           max_side: int | None, batchnorm: str) -> list:
    """SegGAN's Tables I and II: DeepLab alone, then SegGAN with the paper's lambda1, lambda2
    (or the ones given), for each generator input and seed (``lib.methods.seggan.Setting``; the
    paper's values, or this study's stated choice, for everything else). Each dataset's initial
    weights and crop are set by ``lib.methods.seggan.for_dataset``."""
    from .methods import seggan as S

    base = S.Setting(lambda_content=lambda_content, lambda_adversarial=lambda_adversarial, adversarial=adversarial,
                     iterations=iterations, gan_iterations=gan_iterations, batch=batch, backbone=backbone,
                     max_side=max_side, batchnorm=batchnorm)
    return S.settings_grid(base, seeds, generator_inputs)


def seggan_lambda(seeds: Sequence[int], generator_inputs: Sequence[str], lambdas: Sequence[float], adversarial: str,
                  iterations: int, gan_iterations: int, batch: int, backbone: str,
                  max_side: int | None, batchnorm: str) -> list:
    """Beyond the paper: DeepLab, then SegGAN for every (lambda1, lambda2) of ``lambdas`` crossed
    (but 0, 0: DeepLab itself), each generator input and seed."""
    from itertools import product

    from .methods import seggan as S

    base = S.Setting(adversarial=adversarial, iterations=iterations, gan_iterations=gan_iterations, batch=batch,
                     backbone=backbone, max_side=max_side, batchnorm=batchnorm)
    grid = [(a, b) for a, b in product(lambdas, lambdas) if (a, b) != (0, 0)]
    return S.settings_grid(base, seeds, generator_inputs, grid)


def jigsawgan(forms: Sequence[str], seeds: Sequence[int], tiles: Sequence[int], trunks: Sequence[str],
              pretrain_epochs: int, finetune_epochs: int, alpha: float, beta: float) -> tuple[Any, list]:
    """JigsawGAN's Table 1: the pre-training setting (the report's and the authors' code's
    hyperparameters, ``alpha`` and ``beta`` given) and every fine-tuning: the baseline CNN, the
    GAN without jigsaw and JigsawGAN with each number of tiles, trunks trainable or frozen."""
    from .methods import jigsawgan as J

    base = J.PretrainSetting(epochs=pretrain_epochs, alpha=alpha, beta=beta)
    return base, J.settings(forms, seeds, tiles, trunks, epochs=finetune_epochs)


def jigsawgan_datasize(forms: Sequence[str], seeds: Sequence[int], tiles: Sequence[int], fractions: Sequence[float],
                       pretrain_epochs: int, finetune_epochs: int, alpha: float, beta: float) -> tuple[Any, list]:
    """JigsawGAN's Fig. 3: the fine-tunings of Table 1 with trainable trunks, on each fraction
    of the training split."""
    from .methods import jigsawgan as J

    base = J.PretrainSetting(epochs=pretrain_epochs, alpha=alpha, beta=beta)
    return base, J.settings(forms, seeds, tiles, ["trainable"], fractions, epochs=finetune_epochs)


def _pet_sets(p: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    out = {}
    if p.get("synthetic_images"):
        out["synthetic_pets"] = ("synthetic_images", "synthetic_size")
    if p.get("animal_images") or p.get("pet_images"):
        out["oxford_pet"] = ("animal_images", "animal_classes", "pet_images", "data_root")
    return out


def _scene_sets(p: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {name: names for name, names in (
        ("synthetic_pets", ("synthetic_images", "synthetic_size")), ("oxford_pet", ("pet_images", "data_root")),
        ("stanford_background", ("stanford_images", "data_root")), ("voc2012", ("voc_images", "data_root")))
        if p.get(names[0], 0)}


def _seggan_runs(settings: Sequence[Any]) -> list[dict[str, Any]]:
    return [s.segmentation_config() for s in settings]  # what each run depends on (DeepLab: no lambda)


def _jigsawgan_runs(built: tuple[Any, Sequence[Any]]) -> list[Any]:
    from dataclasses import asdict

    base, fine = built
    return [asdict(base), [asdict(s) for s in fine]]


#: the dataset-level notebooks: what they train, what each training depends on, and the
#: parameters that choose each image set
TRAININGS: dict[str, tuple[Callable[..., Any], Callable[[Any], Any],
                           Callable[[Mapping[str, Any]], dict[str, tuple[str, ...]]]]] = {
    "seggan": (seggan, _seggan_runs, _scene_sets), "seggan_lambda": (seggan_lambda, _seggan_runs, _scene_sets),
    "jigsawgan": (jigsawgan, _jigsawgan_runs, _pet_sets),
    "jigsawgan_datasize": (jigsawgan_datasize, _jigsawgan_runs, _pet_sets),
}


def work(notebook: str, p: Mapping[str, Any]) -> dict[str, Any]:
    """Everything ``notebook`` computes with parameters ``p``, as plain data: every
    configuration with its seeds (its cache key), the image sets with the parameters that choose
    them, and how results are scored. Two parameter dictionaries that give the same description
    give the same numbers."""
    from .methods.base import params_key
    from .runs import grid_seeds

    if notebook in PLANS:
        plan = PLANS[notebook]
        sets = plan.sets(p)
        return {
            "grids": [[(params_key(m), grid_seeds(m, p["seeds"])) for m in grid] for grid in grids(notebook, p)],
            "evaluator": plan.evaluator(p).key, "max_side": p.get("max_side"),
            "sets": {name: {k: p.get(k) for k in names} for name, names in sets.items()},
        }
    if notebook not in TRAININGS:
        raise ValueError(f"no notebook {notebook!r}; these are: {', '.join([*PLANS, *TRAININGS])}")
    build, runs, sets = TRAININGS[notebook]
    described = {"settings": runs(_call(build, p)), "sets": {name: {k: p.get(k) for k in names}
                                                             for name, names in sets(p).items()}}
    if "weights" in p:  # SegGAN's DeepLab weights and crops, per dataset
        from .methods.seggan import crop_for

        described["weights"] = {name: p["weights"].get(name) for name in described["sets"]}
        described["crop"] = {name: crop_for(p["crop"], name) if isinstance(p["crop"], int) or name in p["crop"]
                             else None for name in described["sets"]}
    return described
