"""The sample record shared by every dataset reader, and file helpers for the folder layouts."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from medzsad.errors import ImageError, InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "NORMAL_FOLDER_NAMES",
    "MASK_STEM_SUFFIXES",
    "Sample",
    "check_mask_size",
    "check_mask_sizes",
    "list_images",
    "pair_masks",
    "require_dir",
    "summarise",
]

logger = logging.getLogger(__name__)

#: File suffixes read as 2D images (lower case).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

#: Folder names that hold normal images in the folder layouts (compared case-insensitively).
NORMAL_FOLDER_NAMES = frozenset({"good", "normal", "no", "ok", "healthy"})

#: Suffixes a mask's file stem may add to its image's stem (MVTec ``_mask``, ISIC ``_Segmentation``).
MASK_STEM_SUFFIXES = ("", "_mask", "_Segmentation", "_segmentation", "_label", "_gt")


@dataclass(frozen=True)
class Sample:
    """One labelled 2D image.

    Attributes:
        image: path of the image file.
        mask: path of the ground-truth mask (any non-zero pixel is anomalous), or ``None``.
        label: 0 normal, 1 anomalous.
        class_name: object / organ class, one row of the metrics table (``"brain"``, ``"bottle"``).
        defect: defect type or source folder (``"crack"``, ``"yes"``), informative only.
        slice_index: for slices drawn from a volume, the slice number along the volume's k axis.
    """

    image: Path
    mask: Path | None
    label: int
    class_name: str
    defect: str = ""
    slice_index: int | None = None

    @property
    def mask_known(self) -> bool:
        """Whether the pixel ground truth is known: normal images (all-zero) or a mask file."""
        return self.label == 0 or self.mask is not None


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a folder, else raise an :class:`InputError` saying what was expected."""
    if not path.is_dir():
        raise InputError(f"{what}: folder {path} does not exist; check the dataset root and its layout")
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def pair_masks(images: Sequence[Path], mask_dir: Path, dataset: str, hint: str = "") -> list[Path]:
    """Find each image's mask in ``mask_dir`` by file stem.

    A mask matches when its stem is the image's stem plus one of :data:`MASK_STEM_SUFFIXES`
    (any image suffix). Matching by name rather than by sorted position (as the reference scripts do)
    keeps a stray file from shifting every pair.

    Args:
        images: image files.
        mask_dir: folder of masks.
        dataset: dataset name for messages.
        hint: what to do when a mask is missing, appended to the message.

    Returns:
        One mask path per image, same order.

    Raises:
        InputError: an image has no mask; the message names the first few.
    """
    by_stem: dict[str, Path] = {}
    for m in list_images(require_dir(mask_dir, f"{dataset} masks")):
        by_stem.setdefault(m.stem, m)
    out: list[Path] = []
    missing: list[str] = []
    for img in images:
        found = next((by_stem[img.stem + s] for s in MASK_STEM_SUFFIXES if img.stem + s in by_stem), None)
        if found is None:
            missing.append(img.name)
        else:
            out.append(found)
    if missing:
        raise InputError(
            f"{dataset}: {len(missing)} image(s) have no mask in {mask_dir} (first: {missing[:3]}); "
            f"a mask must be named like the image, optionally with one of {list(MASK_STEM_SUFFIXES[1:])}"
            + (f"; {hint}" if hint else "")
        )
    return out


def _size_wh(path: Path) -> tuple[int, int]:
    """Width and height of an image file, from its header (the pixels are not decoded)."""
    try:
        with Image.open(path) as img:
            return int(img.size[0]), int(img.size[1])
    except OSError as e:  # PIL's UnidentifiedImageError is an OSError
        raise ImageError(f"{path}: cannot read image: {e}") from e


def check_mask_size(image: Path, mask: Path) -> None:
    """Raise an :class:`ImageError` unless ``mask`` has exactly ``image``'s width and height.

    A mask of another size would be stretched onto the image and train (or score) wrong pixels, so
    no tolerance is given, not even for the same aspect ratio.
    """
    mask_wh, image_wh = _size_wh(mask), _size_wh(image)
    if mask_wh != image_wh:
        raise ImageError(
            f"{mask}: mask is {mask_wh[0]}x{mask_wh[1]} px but its image {image} is "
            f"{image_wh[0]}x{image_wh[1]} px (width x height); a mask must have its image's size: "
            "replace the mask, or remove it (and the image) from the dataset"
        )


def check_mask_sizes(samples: Iterable[Sample]) -> None:
    """:func:`check_mask_size` for every anomalous sample with a mask (headers only: fast).

    Raises:
        ImageError: the first mask whose size differs from its image's, or an unreadable file.
    """
    for s in samples:
        if s.label and s.mask is not None:
            check_mask_size(s.image, s.mask)


def summarise(samples: Iterable[Sample]) -> dict[str, tuple[int, int]]:
    """Class name -> (number of images, number anomalous)."""
    out: dict[str, tuple[int, int]] = {}
    for s in samples:
        n, a = out.get(s.class_name, (0, 0))
        out[s.class_name] = (n + 1, a + int(s.label > 0))
    return out
