"""Shared fixtures: where the real datasets are (if anywhere), and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_datasets() -> Path | None:
    """The staged real datasets: $SEGSTUDY_DATA_ROOT if it holds bsds500, else ../shared/datasets."""
    candidates = [os.environ.get("SEGSTUDY_DATA_ROOT"), REPO.parent / "shared" / "datasets"]
    for c in candidates:
        if c and (Path(c) / "bsds500" / "images" / "test").is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def bsds_root() -> Path:
    """Data root holding the real BSDS500; tests using it are skipped when it is absent."""
    root = shared_datasets()
    if root is None:
        pytest.skip("real BSDS500 not available (set SEGSTUDY_DATA_ROOT or place ../shared/datasets)")
    return root


def write_fake_bsds(root: Path, ids=("2", "10"), shape=(12, 16), split="test", annotators=2, seed=0) -> list:
    """Write a tiny BSDS500 in the official layout (jpg + .mat cell array 'groundTruth');
    returns the segmentations written, per image, so tests can compare."""
    import numpy as np
    import scipy.io
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = []
    (root / "bsds500" / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "bsds500" / "groundTruth" / split).mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "bsds500" / "images" / split / f"{image_id}.jpg")
        segs = [rng.integers(1, 2 + k, size=shape).astype(np.uint16) for k in range(1, annotators + 1)]
        cell = np.empty((1, annotators), dtype=object)
        for k, s in enumerate(segs):
            cell[0, k] = {"Segmentation": s, "Boundaries": np.zeros(shape, np.uint8)}
        scipy.io.savemat(root / "bsds500" / "groundTruth" / split / f"{image_id}.mat", {"groundTruth": cell})
        written.append(segs)
    return written


def write_fake_voc(root: Path, ids=("2007_000033", "2007_000042"), shape=(10, 14), seed=0) -> dict:
    """Write a tiny PASCAL VOC 2012 in the official layout: JPEGImages, palette PNGs for
    SegmentationClass and SegmentationObject with a 255 void border around each object, and
    ImageSets/Segmentation/val.txt. Returns {id: (class map, object map)}."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True, exist_ok=True)
    written = {}
    palette = [v for i in range(256) for v in (i, (i * 7) % 256, (i * 13) % 256)]
    for image_id in ids:
        h, w = shape
        cls = np.zeros(shape, np.uint8)
        obj = np.zeros(shape, np.uint8)
        cls[1:5, 1:6], obj[1:5, 1:6] = 15, 1  # a person
        cls[5:9, 7:12], obj[5:9, 7:12] = 15, 2  # a second person: same class, another instance
        border = np.zeros(shape, bool)
        border[0, 0:7] = border[4:9, 6] = True
        cls[border], obj[border] = 255, 255
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(base / "JPEGImages" / f"{image_id}.jpg")
        for name, arr in (("SegmentationClass", cls), ("SegmentationObject", obj)):
            im = Image.fromarray(arr, mode="P")
            im.putpalette(palette)
            im.save(base / name / f"{image_id}.png")
        written[image_id] = (cls, obj)
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
    return written


def write_fake_ph2(root: Path, ids=("IMD002", "IMD010"), shape=(20, 24), diagnoses=True) -> dict:
    """PH2's own layout: 'PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp' and
    'IMDxxx_lesion/IMDxxx_lesion.bmp' (1-bit), plus a PH2_dataset.xlsx shaped like the real one."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    base = root / "ph2" / "PH2Dataset"
    masks = {}
    for k, image_id in enumerate(ids):
        folder = base / "PH2 Dataset images" / image_id
        (folder / f"{image_id}_Dermoscopic_Image").mkdir(parents=True, exist_ok=True)
        (folder / f"{image_id}_lesion").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((*shape, 3), 180 + k, np.uint8)).save(folder / f"{image_id}_Dermoscopic_Image" / f"{image_id}.bmp")
        mask = np.zeros(shape, bool)
        mask[5:12, 6:14 + k] = True
        Image.fromarray(mask).convert("1").save(folder / f"{image_id}_lesion" / f"{image_id}_lesion.bmp")
        masks[image_id] = mask.astype(np.uint8)
    if diagnoses:
        rows = [[None] * 5 for _ in range(12)]
        rows.append(["Image Name", "Histological Diagnosis", "Common Nevus", "Atypical Nevus", "Melanoma"])
        for k, image_id in enumerate(ids):
            rows.append([image_id, None, "X" if k % 3 == 0 else None, "X" if k % 3 == 1 else None, "X" if k % 3 == 2 else None])
        pd.DataFrame(rows).to_excel(base / "PH2_dataset.xlsx", header=False, index=False)
    return masks


def write_fake_lung(root: Path, ids=("ID_0000_Z_0142", "ID_0001_Z_0146"), shape=(16, 16)) -> dict:
    """Kaggle's 2D layout: lung_ct/2d_images/<id>.tif (signed 16-bit CT values), 2d_masks/<id>.tif (0/255)."""
    import numpy as np
    from PIL import Image

    base = root / "lung_ct"
    (base / "2d_images").mkdir(parents=True, exist_ok=True)
    (base / "2d_masks").mkdir(parents=True, exist_ok=True)
    slices = {}
    for image_id in ids:
        hu = np.full(shape, 40, np.int32)  # soft tissue
        hu[4:12, 3:7] = hu[4:12, 9:13] = -850  # two lungs
        hu[0, :] = -1000  # air
        Image.fromarray(hu, mode="I").save(base / "2d_images" / f"{image_id}.tif")
        Image.fromarray(((hu == -850) * 255).astype(np.uint8)).save(base / "2d_masks" / f"{image_id}.tif")
        slices[image_id] = hu
    return slices


@pytest.fixture(autouse=True, scope="session")
def _layout_cache(tmp_path_factory):
    """The measured memory layouts (lib/layout.py) go to a folder of this test session, not to
    the user's ~/.cache; notebook kernels inherit the variable."""
    os.environ["SEGSTUDY_CACHE_DIR"] = str(tmp_path_factory.mktemp("segstudy-cache"))
    yield


def write_fake_stanford(root: Path, ids=("0000047", "0000051"), shape=(12, 16), unknown=True) -> dict:
    """Stanford Background's layout: stanford_background/iccv09Data/images/<id>.jpg and
    labels/<id>.regions.txt (one row of integers per image row, -1 for unknown). Returns the
    label maps written."""
    import numpy as np
    from PIL import Image

    base = root / "stanford_background" / "iccv09Data"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "labels").mkdir(parents=True, exist_ok=True)
    written = {}
    for k, image_id in enumerate(ids):
        labels = np.zeros(shape, np.int32)  # sky
        labels[shape[0] // 2:, :] = 3  # grass
        labels[3:7, 4 + k: 9 + k] = 7  # a foreground object
        if unknown:
            labels[0, :3] = -1
        Image.fromarray(np.full((*shape, 3), 60 + 40 * k, np.uint8)).save(base / "images" / f"{image_id}.jpg")
        text = "\n".join(" ".join(str(v) for v in row) for row in labels) + "\n"
        (base / "labels" / f"{image_id}.regions.txt").write_text(text)
        written[image_id] = labels
    return written


def write_fake_sbd(root: Path, train=("2008_000002", "2007_000033"), val=("2008_000003",), shape=(10, 14)) -> dict:
    """SBD's dataset folder as torchvision's SBDataset reads it: sbd/img/<id>.jpg, sbd/cls/<id>.mat
    (struct GTcls with a Segmentation field, classes 0..20) and sbd/{train,val}.txt. Returns the
    class maps written."""
    import numpy as np
    import scipy.io
    from PIL import Image

    base = root / "sbd"
    (base / "img").mkdir(parents=True, exist_ok=True)
    (base / "cls").mkdir(parents=True, exist_ok=True)
    written = {}
    for k, image_id in enumerate((*train, *val)):
        seg = np.zeros(shape, np.uint8)
        seg[2:6, 3: 8 + k] = 12  # a dog
        Image.fromarray(np.full((*shape, 3), 90 + 20 * k, np.uint8)).save(base / "img" / f"{image_id}.jpg")
        scipy.io.savemat(base / "cls" / f"{image_id}.mat", {"GTcls": {"Segmentation": seg, "CategoriesPresent": [12]}})
        written[image_id] = seg
    (base / "train.txt").write_text("".join(f"{i}\n" for i in train))
    (base / "val.txt").write_text("".join(f"{i}\n" for i in val))
    return written
