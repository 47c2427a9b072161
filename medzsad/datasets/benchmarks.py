"""Readers of the medical benchmarks of the AnomalyCLIP paper (Table 2), in their public layouts.

Each reader takes the folder the public release unpacks to and returns
:class:`~medzsad.datasets.samples.Sample` records with the class names the reference uses
(``brain``, ``chest``, ``skin``, ``colon``, ``thyroid``). Where the reference's own preparation
scripts (``generate_dataset_json/*.py``) expect a re-arranged copy, that layout is accepted too.

==========  ==========================================================================================
name        layout read
==========  ==========================================================================================
headct      Kaggle "Head CT - hemorrhage": ``labels.csv`` (``id, hemorrhage``) + ``head_ct/NNN.png``
            (also nested ``head_ct/head_ct/``); or the reference's ``brain/test/{good,...}/``
brainmri    Kaggle "Brain MRI Images for Brain Tumor Detection": ``[brain_tumor_dataset/]{yes,no}/``
br35h       Kaggle "Br35H": ``{yes,no}/`` (the unlabelled ``pred/`` folder is ignored)
covid       COVID-19 Radiography Database: ``NORMAL|Normal/`` and ``COVID|COVID-19/``, images directly
            inside or in ``images/`` (v4+); other classes (viral pneumonia, lung opacity) are skipped
            by default as in the paper (1341 normal, 219 COVID); lung masks are not anomaly masks
isic        ISBI 2016 ISIC Part 1 test: ``ISBI2016_ISIC_Part1_Test_Data/`` and
            ``ISBI2016_ISIC_Part1_Test_GroundTruth/*_Segmentation.png``; or the reference's
            ``skin/test/<x>/`` + ``skin/ISBI2016_ISIC_Part1_Test_GroundTruth/``
clinicdb    CVC-ClinicDB: ``images/`` + ``masks/`` (PraNet release) or ``Original/`` + ``Ground Truth/``
colondb     CVC-ColonDB: ``images/`` + ``masks/``
kvasir      Kvasir-SEG: ``images/`` + ``masks/``
endo        EndoTect 2020 segmentation test: ``images/`` (any non-mask folder) + ``masks/``
tn3k        TN3K: ``test-image/`` + ``test-mask/``
==========  ==========================================================================================

All segmentation benchmarks contain anomalous images only: their normal pixels come from the masks,
so only pixel-level metrics are defined.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from medzsad.datasets.layouts import parse_label
from medzsad.datasets.samples import NORMAL_FOLDER_NAMES, Sample, list_images, pair_masks, require_dir
from medzsad.errors import InputError

__all__ = ["BENCHMARK_READERS", "read_benchmark"]

logger = logging.getLogger(__name__)


def _first_dir(root: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        for cand in (root / n, *(p / n for p in sorted(root.iterdir()) if p.is_dir())):
            if cand.is_dir():
                return cand
    return None


def _labelled_folders(root: Path, cls: str, dataset: str, skip: Sequence[str] = ()) -> list[Sample]:
    out: list[Sample] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() not in skip):
        label = 0 if sub.name.lower() in NORMAL_FOLDER_NAMES else 1
        out += [Sample(p, None, label, cls, sub.name) for p in list_images(sub)]
    if not out or {s.label for s in out} != {0, 1}:
        raise InputError(
            f"{dataset}: {root} must hold a normal and an abnormal image folder (e.g. no/ and yes/)"
        )
    return out


def read_headct(root: Path) -> list[Sample]:
    """HeadCT (Kaggle "Head CT - hemorrhage", 100 normal + 100 hemorrhage), class ``brain``."""
    root = require_dir(Path(root), "HeadCT root")
    if (root / "brain" / "test").is_dir():
        return _labelled_folders(root / "brain" / "test", "brain", "HeadCT")
    labels_csv = next(
        (p for p in (root / "labels.csv", root / "head_ct" / "labels.csv") if p.is_file()), None
    )
    if labels_csv is None:
        raise InputError(f"HeadCT: no labels.csv in {root} (expected labels.csv and head_ct/000.png ...)")
    img_dir = next(
        (d for d in (root / "head_ct" / "head_ct", root / "head_ct", root) if d.is_dir() and list_images(d)),
        None,
    )
    if img_dir is None:
        raise InputError(f"HeadCT: no image folder head_ct/ with NNN.png files under {root}")
    by_stem = {p.stem: p for p in list_images(img_dir)}
    with labels_csv.open(newline="", encoding="utf-8-sig") as f:
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f)]
    out: list[Sample] = []
    for i, row in enumerate(rows, start=2):
        if "id" not in row or "hemorrhage" not in row:
            raise InputError(f"HeadCT: {labels_csv} needs columns 'id' and 'hemorrhage'; found {sorted(row)}")
        try:
            stem = f"{int(row['id']):03d}"
        except ValueError as e:
            raise InputError(f"HeadCT: {labels_csv} line {i}: id {row['id']!r} is not an integer") from e
        if stem not in by_stem:
            raise InputError(
                f"HeadCT: {labels_csv} line {i} names id {row['id']} but {img_dir}/{stem}.png is missing"
            )
        label = parse_label(row["hemorrhage"], f"{labels_csv} line {i}")
        out.append(Sample(by_stem[stem], None, label, "brain", "hemorrhage" if label else "normal"))
    return out


def read_brainmri(root: Path) -> list[Sample]:
    """BrainMRI (Kaggle brain tumour detection: ``yes``/``no``), class ``brain``."""
    root = require_dir(Path(root), "BrainMRI root")
    inner = root / "brain_tumor_dataset"
    return _labelled_folders(inner if inner.is_dir() else root, "brain", "BrainMRI")


def read_br35h(root: Path) -> list[Sample]:
    """Br35H (``yes``/``no``; the unlabelled ``pred`` folder is skipped), class ``brain``."""
    root = require_dir(Path(root), "Br35H root")
    return _labelled_folders(root, "brain", "Br35H", skip=("pred",))


def read_covid(root: Path, include_other: bool = False) -> list[Sample]:
    """COVID-19 radiography (normal vs COVID), class ``chest``.

    Args:
        root: the release folder.
        include_other: also read the other disease folders (viral pneumonia, lung opacity) as anomalous.
    """
    root = require_dir(Path(root), "COVID-19 root")
    out: list[Sample] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        name = sub.name.lower()
        label = 0 if name in NORMAL_FOLDER_NAMES else 1
        if label and not name.startswith("covid") and not include_other:
            logger.info("COVID-19: skipping folder %s (not NORMAL or COVID)", sub.name)
            continue
        img_dir = sub / "images" if (sub / "images").is_dir() else sub
        out += [Sample(p, None, label, "chest", sub.name) for p in list_images(img_dir)]
    if {s.label for s in out} != {0, 1}:
        raise InputError(f"COVID-19: {root} must hold a NORMAL (or Normal) and a COVID folder")
    return out


def read_isic(root: Path) -> list[Sample]:
    """ISIC 2016 (ISBI part 1 test set, skin lesions with masks), class ``skin``."""
    root = require_dir(Path(root), "ISIC root")
    prepared = root / "skin" / "test"
    if prepared.is_dir():
        images = [p for d in sorted(prepared.iterdir()) if d.is_dir() for p in list_images(d)]
        gt = root / "skin" / "ISBI2016_ISIC_Part1_Test_GroundTruth"
    else:
        data = _first_dir(root, ["ISBI2016_ISIC_Part1_Test_Data"])
        gt_found = _first_dir(root, ["ISBI2016_ISIC_Part1_Test_GroundTruth"])
        if data is None or gt_found is None:
            raise InputError(
                f"ISIC: {root} must hold ISBI2016_ISIC_Part1_Test_Data/ and "
                "ISBI2016_ISIC_Part1_Test_GroundTruth/"
            )
        images, gt = list_images(data), gt_found
    masks = pair_masks(images, gt, "ISIC")
    return [Sample(p, m, 1, "skin") for p, m in zip(images, masks)]


def _images_masks(
    root: Path, dataset: str, cls: str, image_dirs: Sequence[str], mask_dirs: Sequence[str]
) -> list[Sample]:
    root = require_dir(Path(root), f"{dataset} root")
    img_dir = next((root / n for n in image_dirs if (root / n).is_dir()), None)
    mask_dir = next((root / n for n in mask_dirs if (root / n).is_dir()), None)
    if img_dir is None or mask_dir is None:
        raise InputError(
            f"{dataset}: {root} must hold an image folder {list(image_dirs)} and masks {list(mask_dirs)}"
        )
    images = list_images(img_dir)
    if not images:
        raise InputError(f"{dataset}: no images in {img_dir}")
    masks = pair_masks(images, mask_dir, dataset)
    return [Sample(p, m, 1, cls) for p, m in zip(images, masks)]


def read_clinicdb(root: Path) -> list[Sample]:
    """CVC-ClinicDB (612 colonoscopy frames with polyp masks), class ``colon``."""
    return _images_masks(root, "CVC-ClinicDB", "colon", ["images", "Original"], ["masks", "Ground Truth"])


def read_colondb(root: Path) -> list[Sample]:
    """CVC-ColonDB (380 colonoscopy frames with polyp masks), class ``colon``."""
    return _images_masks(root, "CVC-ColonDB", "colon", ["images"], ["masks"])


def read_kvasir(root: Path) -> list[Sample]:
    """Kvasir-SEG (1000 polyp images with masks), class ``colon``."""
    return _images_masks(root, "Kvasir", "colon", ["images"], ["masks"])


def read_endo(root: Path) -> list[Sample]:
    """EndoTect 2020 segmentation test set: every folder but ``masks`` holds images, class ``colon``."""
    root = require_dir(Path(root), "Endo root")
    out: list[Sample] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "masks"):
        images = list_images(sub)
        if sub.name.lower() in NORMAL_FOLDER_NAMES:
            out += [Sample(p, None, 0, "colon", sub.name) for p in images]
        else:
            out += [
                Sample(p, m, 1, "colon", sub.name)
                for p, m in zip(images, pair_masks(images, root / "masks", "Endo"))
            ]
    if not out:
        raise InputError(f"Endo: no images in {root} (expected images/ and masks/)")
    return out


def read_tn3k(root: Path) -> list[Sample]:
    """TN3K test set (thyroid nodule ultrasound with masks), class ``thyroid``."""
    return _images_masks(root, "TN3K", "thyroid", ["test-image"], ["test-mask"])


#: Benchmark name -> reader of its public layout.
BENCHMARK_READERS: dict[str, Callable[[Path], list[Sample]]] = {
    "headct": read_headct,
    "brainmri": read_brainmri,
    "br35h": read_br35h,
    "covid": read_covid,
    "isic": read_isic,
    "clinicdb": read_clinicdb,
    "colondb": read_colondb,
    "kvasir": read_kvasir,
    "endo": read_endo,
    "tn3k": read_tn3k,
}


def read_benchmark(name: str, root: Path) -> list[Sample]:
    """Read benchmark ``name`` from ``root``.

    Raises:
        InputError: unknown name, or a layout that does not match.
    """
    key = name.lower()
    if key not in BENCHMARK_READERS:
        raise InputError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARK_READERS)}")
    samples = BENCHMARK_READERS[key](Path(root))
    logger.info("benchmark %s: %d images from %s", key, len(samples), root)
    return samples
