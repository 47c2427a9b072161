"""Load samples as CLIP-ready tensors, with the reference's test-time transforms.

Images: RGB, resized to ``S x S`` with PIL bicubic (torchvision's ``Resize`` on a PIL image, as in the
reference ``get_transform``), scaled to [0, 1], normalised with the backbone's mean/std.
Masks: any non-zero pixel is anomalous; resized with PIL bilinear on the 0/255 mask and binarised at
0.5, exactly as the reference's ``target_transform`` followed by ``gt > 0.5``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from medzsad.datasets.samples import Sample, check_mask_size
from medzsad.errors import InputError, MedzsadError, keep_traceback, traceback_text

__all__ = ["load_image", "load_mask", "SampleDataset", "collate_samples", "load_batches"]

logger = logging.getLogger(__name__)


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except (OSError, UnidentifiedImageError) as e:
        raise InputError(f"{path}: cannot read image: {e}") from e
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I", "F"):
        # 16-bit / float grayscale: rescale min-max to 8 bit before RGB conversion, as PIL cannot.
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo) * 255.0
        img = Image.fromarray(np.round(a).astype(np.uint8), mode="L")
    return img.convert("RGB")


def load_image(path: Path, image_size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Read an image file as a CLIP input.

    Args:
        path: image file (PNG, JPEG, BMP, TIFF; 8/16-bit grey or colour).
        image_size: output side ``S``.
        mean: per-channel mean (3,), the backbone's.
        std: per-channel std (3,).

    Returns:
        (3, S, S) float32, CLIP-normalised.

    Raises:
        InputError: unreadable file.
    """
    img = _to_rgb(_open(Path(path))).resize((image_size, image_size), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def load_mask(path: Path | None, image_size: int) -> torch.Tensor:
    """Read a mask file (non-zero is anomalous) at the model's size.

    Args:
        path: mask file, or ``None`` for an all-normal mask.
        image_size: output side ``S``.

    Returns:
        (S, S) float32 in {0, 1}.
    """
    if path is None:
        return torch.zeros(image_size, image_size, dtype=torch.float32)
    binary = np.asarray(_open(Path(path)).convert("L")) > 0
    resized = Image.fromarray(binary.astype(np.uint8) * 255, mode="L").resize(
        (image_size, image_size), Image.Resampling.BILINEAR
    )
    return torch.from_numpy((np.asarray(resized, dtype=np.float32) / 255.0 > 0.5).astype(np.float32))


class SampleDataset(Dataset):
    """A torch dataset over :class:`Sample` records.

    Items are dicts: ``image`` (3, S, S) float32 normalised; ``mask`` (S, S) float32 in {0, 1};
    ``mask_known`` bool; ``label`` int64; ``class_name`` str; ``index`` int.

    Args:
        samples: the records.
        image_size: model input side ``S``.
        mean: backbone normalisation mean (3,).
        std: backbone normalisation std (3,).
    """

    def __init__(
        self, samples: Sequence[Sample], image_size: int, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        self.samples = list(samples)
        self.image_size = int(image_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        mask = s.mask if s.label else None
        if mask is not None:  # the readers check this too; samples built by hand may not be
            check_mask_size(s.image, mask)
        return {
            "image": load_image(s.image, self.image_size, self.mean, self.std),
            "mask": load_mask(mask, self.image_size),
            "mask_known": bool(s.mask_known),
            "label": int(s.label),
            "class_name": s.class_name,
            "index": int(index),
        }


def collate_samples(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack :class:`SampleDataset` items into a batch (tensors stacked, names kept as a list)."""
    return {
        "image": torch.stack([it["image"] for it in items]),
        "mask": torch.stack([it["mask"] for it in items]),
        "mask_known": torch.tensor([it["mask_known"] for it in items], dtype=torch.bool),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.int64),
        "class_name": [it["class_name"] for it in items],
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
    }


class _Failed(NamedTuple):
    """A typed error raised while loading an item in a worker process, sent back as the item."""

    error: MedzsadError


class _Guarded(Dataset):
    """``dataset``, with its typed errors returned as :class:`_Failed` items instead of raised.

    torch re-raises a worker's exception as its type built from the formatted traceback text
    ("Caught InputError in DataLoader worker process 0. Original Traceback ..."); returned as an
    item, the error itself (type and one-line message) crosses the process boundary whole.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except MedzsadError as e:
            keep_traceback(e)  # the frames do not cross the process boundary; the text does
            return _Failed(e)


def _collate(items: Sequence[Any]) -> Any:
    failed = next((it for it in items if isinstance(it, _Failed)), None)
    return failed if failed is not None else collate_samples(items)


def load_batches(
    dataset: Dataset, batches: Sequence[list[int]], num_workers: int = 0
) -> Iterator[dict[str, Any]]:
    """Load the items of ``dataset`` in the given batches of indices, collated by :func:`collate_samples`.

    With worker processes, a typed error of the dataset (an unreadable image) is raised here as
    itself, exactly as without workers: one line naming the file; its worker traceback is logged
    at DEBUG level (``-vv``).

    Args:
        dataset: items as :class:`SampleDataset`'s.
        batches: indices of each batch, in order.
        num_workers: data-loading processes (0: load in this process).

    Yields:
        One collated batch per entry of ``batches``.
    """
    source = dataset if num_workers == 0 else _Guarded(dataset)
    loader = DataLoader(source, batch_sampler=batches, collate_fn=_collate, num_workers=num_workers)
    for batch in loader:
        if isinstance(batch, _Failed):
            logger.debug("data-loading worker traceback:\n%s", traceback_text(batch.error))
            raise batch.error
        yield batch
