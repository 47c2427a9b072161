"""Readers of the auxiliary-data layouts: MVTec AD, VisA, a labelled folder and a CSV list.

Every reader returns a list of :class:`~medzsad.datasets.samples.Sample`, sorted deterministically.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

from medzsad.datasets.samples import (
    NORMAL_FOLDER_NAMES,
    Sample,
    check_mask_sizes,
    list_images,
    pair_masks,
    require_dir,
)
from medzsad.errors import ConfigError, InputError

__all__ = ["read_mvtec", "read_visa", "read_folder", "read_csv", "parse_label"]

logger = logging.getLogger(__name__)

_LABELS = {
    "0": 0,
    "normal": 0,
    "good": 0,
    "no": 0,
    "1": 1,
    "anomaly": 1,
    "anomalous": 1,
    "abnormal": 1,
    "defect": 1,
    "yes": 1,
}


#: What to do about a missing MVTec mask (the MVTec layout requires one per defect image).
_MVTEC_MASK_HINT = (
    "MVTec AD ships a mask for every defect image: restore the missing mask(s), or read the images "
    "with --dataset-kind folder or csv, where an anomalous image without a mask trains the image loss only"
)


def parse_label(value: str, where: str) -> int:
    """Parse an image label: ``0/normal/good/no`` -> 0, ``1/anomaly/anomalous/abnormal/defect/yes`` -> 1.

    Raises:
        InputError: any other value (the message names ``where``).
    """
    key = str(value).strip().lower()
    if key.endswith(".0"):
        key = key[:-2]
    if key not in _LABELS:
        raise InputError(f"{where}: label {value!r} is not one of {sorted(_LABELS)}")
    return _LABELS[key]


def _classes(root: Path, classes: Sequence[str] | None, has: str) -> list[str]:
    found = sorted(p.name for p in root.iterdir() if (p / has).is_dir())
    if classes is None:
        if not found:
            raise InputError(f"{root}: no class folder with a '{has}' sub-folder; is this the dataset root?")
        return found
    unknown = sorted(set(classes) - set(found))
    if unknown:
        raise ConfigError(f"{root}: classes {unknown} not found; available: {found}")
    return list(classes)


def read_mvtec(root: Path, split: str = "test", classes: Sequence[str] | None = None) -> list[Sample]:
    """Read the MVTec AD layout (also MPDD, BTAD and other MVTec-style releases).

    ``<root>/<class>/<split>/good/*.png`` are normal; ``<root>/<class>/<split>/<defect>/NAME.png`` are
    anomalous with masks ``<root>/<class>/ground_truth/<defect>/NAME_mask.png``. AnomalyCLIP learns
    its prompts on the *test* split of one dataset (it holds the anomalies and masks), hence the default.
    MVTec AD ships a mask for every defect image, so a missing one is an error (a broken copy), and
    every mask must have its image's width and height.

    Args:
        root: dataset root holding one folder per class.
        split: ``"test"`` or ``"train"``.
        classes: classes to read (default all).

    Raises:
        InputError: missing folders or masks, or no images at all.
        ImageError: a mask whose size differs from its image's.
        ConfigError: unknown class names.
    """
    root = require_dir(Path(root), "MVTec AD root")
    out: list[Sample] = []
    split_dirs = [root / cls / split for cls in _classes(root, classes, split)]
    for split_dir in split_dirs:
        cls = split_dir.parent.name
        for defect_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            images = list_images(defect_dir)
            if defect_dir.name.lower() in NORMAL_FOLDER_NAMES:
                out += [Sample(p, None, 0, cls, defect_dir.name) for p in images]
                continue
            mask_dir = root / cls / "ground_truth" / defect_dir.name
            masks = pair_masks(images, mask_dir, f"MVTec {cls}", _MVTEC_MASK_HINT)
            out += [Sample(p, m, 1, cls, defect_dir.name) for p, m in zip(images, masks)]
    if not out:
        shown = ", ".join(str(d) for d in split_dirs[:3]) + (", ..." if len(split_dirs) > 3 else "")
        raise InputError(
            f"MVTec layout {root}: no images in {shown}; expected images in "
            f"<root>/<class>/{split}/<good|defect>/ (check the root, --split and --classes)"
        )
    check_mask_sizes(out)
    logger.info("MVTec layout %s (%s): %d images", root, split, len(out))
    return out


def read_visa(
    root: Path,
    split: str = "test",
    classes: Sequence[str] | None = None,
    split_csv: str = "split_csv/1cls.csv",
) -> list[Sample]:
    """Read VisA through its split file (columns ``object, split, label, image, mask``).

    Paths in the CSV are relative to ``root``; ``label`` is ``normal`` or ``anomaly``; anomalous rows
    name a mask (non-zero pixels anomalous).

    Args:
        root: the VisA root (``VisA_20220922`` or the prepared copy), holding ``split_csv/``.
        split: ``"train"`` or ``"test"``.
        classes: objects to read (default all).
        split_csv: the split file relative to ``root``.

    Raises:
        InputError: missing CSV, columns or files.
    """
    root = Path(root)
    rows = _read_csv_rows(root / split_csv, ("object", "split", "label", "image", "mask"))
    wanted = None if classes is None else set(classes)
    out: list[Sample] = []
    for i, row in enumerate(rows, start=2):
        if row["split"].strip() != split or (wanted is not None and row["object"] not in wanted):
            continue
        label = parse_label(row["label"], f"{root / split_csv} line {i}")
        mask = row["mask"].strip()
        mask_path = root / mask if (label and mask) else None
        out.append(Sample(_existing(root / row["image"].strip()), mask_path, label, row["object"].strip()))
    if wanted is not None:
        missing = wanted - {s.class_name for s in out}
        if missing:
            raise ConfigError(f"{root / split_csv}: no {split} rows for objects {sorted(missing)}")
    check_mask_sizes(out)
    return sorted(out, key=lambda s: (s.class_name, str(s.image)))


def read_folder(root: Path, class_name: str | None = None, mask_dir: str = "masks") -> list[Sample]:
    """Read a labelled folder: ``<root>/<label folder>/*`` with optional masks in ``<root>/<mask_dir>``.

    Folders named ``good``, ``normal``, ``no``, ``ok`` or ``healthy`` hold normal images; any other
    folder holds anomalous ones. An anomalous image's mask is the file of the same stem (optionally
    ``_mask``) in ``<root>/<mask_dir>/`` or ``<root>/<mask_dir>/<label folder>/``; without one, the
    image trains and is scored at image level only. A mask must have its image's width and height.

    Args:
        root: the folder.
        class_name: class of every image (default the folder's name).
        mask_dir: name of the mask folder inside ``root``.

    Raises:
        InputError: no images in the label sub-folders.
        ImageError: a mask whose size differs from its image's.
    """
    root = require_dir(Path(root), "image folder")
    cls = class_name or root.name
    out: list[Sample] = []
    listing: dict[Path, dict[str, Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name != mask_dir):
        normal = sub.name.lower() in NORMAL_FOLDER_NAMES
        for img in list_images(sub):
            mask = None if normal else _find_mask(img, [root / mask_dir / sub.name, root / mask_dir], listing)
            out.append(Sample(img, mask, 0 if normal else 1, cls, sub.name))
    if not out:
        raise InputError(
            f"folder layout {root}: no images in its label sub-folders "
            f"(expected e.g. {root}/normal/*.png and {root}/abnormal/*.png)"
        )
    check_mask_sizes(out)
    return out


def read_csv(path: Path) -> list[Sample]:
    """Read a CSV list with columns ``image, label`` and optional ``mask, class``.

    Relative paths are relative to the CSV's folder. ``label`` accepts ``0/1`` or
    ``normal/anomaly``; an empty ``mask`` means none (image-level only if the image is anomalous).

    Raises:
        InputError: missing file, columns, images or masks, or a bad label.
        ImageError: a mask whose size differs from its image's.
    """
    path = Path(path)
    rows = _read_csv_rows(path, ("image", "label"))
    base = path.parent
    out: list[Sample] = []
    for i, row in enumerate(rows, start=2):
        label = parse_label(row["label"], f"{path} line {i}")
        mask = (row.get("mask") or "").strip()
        cls = (row.get("class") or "").strip() or path.stem
        mask_path = _existing(base / mask) if mask else None
        out.append(Sample(_existing(base / row["image"].strip()), mask_path, label, cls))
    check_mask_sizes(out)
    return out


def _read_csv_rows(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise InputError(f"{path}: CSV file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "") for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: cannot read CSV: {e}") from e
    missing = [c for c in required if c not in fields]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {fields}")
    return rows


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"{path}: file listed in the dataset does not exist")
    return path


def _find_mask(image: Path, folders: Sequence[Path], listing: dict[Path, dict[str, Path]]) -> Path | None:
    for folder in folders:
        if folder not in listing:
            listing[folder] = {p.stem: p for p in list_images(folder)} if folder.is_dir() else {}
        for stem in (image.stem, image.stem + "_mask"):
            if stem in listing[folder]:
                return listing[folder][stem]
    return None
