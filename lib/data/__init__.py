"""Datasets: one module per dataset, all returning :class:`Sample` objects.

``load(name, ...)`` is the registry's entry point; ``available()`` lists the names.

- ``bsds500``: the Berkeley Segmentation Data Set 500 in its official layout (``bsds500.py``).
- ``synthetic``: generated scenes whose ground truth is exact (``synthetic.py``).
- ``photos``: scikit-image's bundled photographs, no ground truth (``photos.py``).
- ``voc2012``: PASCAL VOC 2012 segmentation in its official layout (``voc2012.py``).
- ``ph2``: PH2 dermoscopy, lesion masks and diagnoses (``ph2.py``).
- ``lung_ct``: Kaggle's 2D lung CT slices and masks, intensity-windowed (``lung_ct.py``).
- ``synthetic_lesions``: generated dermoscopy-like images with exact lesion masks (``synthetic.py``).
- ``animals90``: Kaggle's Animals-90 photographs, unlabelled (``animals90.py``).
- ``oxford_pet``: Oxford-IIIT Pet with three-class trimaps (``oxford_pet.py``).
- ``synthetic_pets``: generated pet-like images with exact three-class masks (``synthetic.py``).
- ``stanford_background``: Stanford Background, eight region classes (``stanford_background.py``).
- ``voc2012_aug``: PASCAL VOC 2012 train augmented with SBD, 10,582 images (``voc2012_aug.py``).
"""

from __future__ import annotations

import importlib

from .base import DatasetError, DatasetNotFound, Sample, SampleList, resize_image

#: name -> (module, class); a module is imported when its dataset is first loaded (a command
#: that needs one dataset does not pay for the others' imports)
_REGISTRY: dict[str, tuple[str, str]] = {
    "bsds500": ("bsds500", "BSDS500"),
    "synthetic": ("synthetic", "SyntheticScenes"),
    "photos": ("photos", "Photos"),
    "voc2012": ("voc2012", "VOC2012"),
    "ph2": ("ph2", "PH2"),
    "lung_ct": ("lung_ct", "LungCT"),
    "synthetic_lesions": ("synthetic", "SyntheticLesions"),
    "animals90": ("animals90", "Animals90"),
    "oxford_pet": ("oxford_pet", "OxfordPet"),
    "synthetic_pets": ("synthetic", "SyntheticPets"),
    "stanford_background": ("stanford_background", "StanfordBackground"),
    "voc2012_aug": ("voc2012_aug", "VOC2012Aug"),
}


def available() -> list[str]:
    return sorted(_REGISTRY)


def load(name: str, **kwargs) -> SampleList:
    """Open dataset ``name`` (see :func:`available`); keyword arguments go to its class."""
    try:
        module, cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(available())}") from None
    return getattr(importlib.import_module(f".{module}", __name__), cls)(**kwargs)


__all__ = [
    "DatasetError",
    "DatasetNotFound",
    "Sample",
    "SampleList",
    "available",
    "load",
    "resize_image",
]
