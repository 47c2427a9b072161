"""Labelled 2D slices drawn from CT/MRI volumes with (optional) anomaly mask volumes.

A CSV lists the cases: ``image`` (volume file), optional ``mask`` (label volume on the same grid,
non-zero is anomalous), optional ``label`` (case label, used for slices when there is no mask) and
``class``. Each slice ``k`` (along the volume's third axis, the DICOM slice order of
:class:`medzsad.io.volume.Volume`) becomes one sample: anomalous with its mask slice when the mask
has voxels there, normal otherwise. Without a mask, the slice takes the case label and trains the
image loss only.

Reading goes through ``medzsad.io.read_volume`` when the scan-input layer provides it (DICOM series,
NIfTI, ...), else through nibabel (NIfTI). The slice-to-tensor transform is injectable so that
training uses the same windowing as inference (``medzsad.transforms`` presets); the default windows
with ``window`` (e.g. a CT HU window) or the volume's 0.5-99.5 percentiles, then applies the
2D image transform of :func:`medzsad.datasets.images.load_image` (bicubic resize, CLIP normalisation).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from medzsad.datasets.layouts import _read_csv_rows, parse_label
from medzsad.datasets.samples import Sample
from medzsad.errors import InputError, NiftiError

__all__ = ["VolumeCase", "read_volume_cases", "VolumeSliceDataset", "window_to_uint8"]

logger = logging.getLogger(__name__)

SliceTransform = Callable[[np.ndarray, int], torch.Tensor]


@dataclass(frozen=True)
class VolumeCase:
    """One volume of the list: ``image`` and optional ``mask`` files, optional case ``label``."""

    image: Path
    mask: Path | None
    label: int | None
    class_name: str


def read_volume_cases(path: Path) -> list[VolumeCase]:
    """Read the case list CSV (columns ``image`` and optional ``mask, label, class``; paths relative to it).

    Raises:
        InputError: missing file/columns, a case with neither mask nor label, or a bad label.
    """
    path = Path(path)
    rows = _read_csv_rows(path, ("image",))
    out = []
    for i, row in enumerate(rows, start=2):
        mask = (row.get("mask") or "").strip()
        label_text = (row.get("label") or "").strip()
        label = parse_label(label_text, f"{path} line {i}") if label_text else None
        if not mask and label is None:
            raise InputError(f"{path} line {i}: a case needs a mask or a label")
        image = path.parent / row["image"].strip()
        out.append(
            VolumeCase(
                image,
                path.parent / mask if mask else None,
                label,
                (row.get("class") or "").strip() or path.stem,
            )
        )
    return out


def _read_array(path: Path) -> np.ndarray:
    """(I, J, K) float32 voxel array of a volume file."""
    try:
        io_mod = importlib.import_module("medzsad.io")
        reader = getattr(io_mod, "read_volume", None)
    except ModuleNotFoundError:
        reader = None
    if callable(reader):
        return np.asarray(reader(path).data, dtype=np.float32)
    try:
        import nibabel as nib

        img = nib.load(str(path))
        return np.asarray(img.dataobj, dtype=np.float32)  # type: ignore[attr-defined]
    except Exception as e:  # nibabel raises ImageFileError, OSError, EOFError, ... for bad files
        raise NiftiError(f"{path}: cannot read volume ({type(e).__name__}: {e}); give a NIfTI file") from e


def window_to_uint8(slice_ij: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Window a slice to [0, 255] uint8 and return it as an image (rows j, columns i).

    Args:
        slice_ij: (I, J) float voxel values of one slice.
        lo: value mapped to 0.
        hi: value mapped to 255.

    Returns:
        (J, I) uint8.
    """
    scaled = np.clip((slice_ij - lo) / max(hi - lo, 1e-6), 0.0, 1.0) * 255.0
    return np.round(scaled).T.astype(np.uint8)


class VolumeSliceDataset(Dataset):
    """Slices of volumes as a torch dataset with the items of :class:`~medzsad.datasets.SampleDataset`.

    ``samples`` holds one :class:`Sample` per slice (``image``/``mask`` are the volume files,
    ``slice_index`` the slice), usable by the trainer and the evaluation like 2D samples.

    Args:
        cases: the volumes.
        image_size: model input side ``S``.
        mean: backbone normalisation mean (3,).
        std: backbone normalisation std (3,).
        window: intensity window ``(lo, hi)``, e.g. ``(-160, 240)`` HU; default percentiles per volume.
        slice_step: keep every n-th slice (1: all).
        slice_transform: replaces the default slice -> (3, S, S) transform: called with the (I, J)
            slice and ``S``.
    """

    def __init__(
        self,
        cases: Sequence[VolumeCase],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        window: tuple[float, float] | None = None,
        slice_step: int = 1,
        slice_transform: SliceTransform | None = None,
    ) -> None:
        self.image_size = int(image_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.window = window
        self.slice_transform = slice_transform
        self._volumes: list[tuple[np.ndarray, np.ndarray | None, tuple[float, float]]] = []
        self.samples: list[Sample] = []
        self._where: list[tuple[int, int]] = []
        for v, case in enumerate(cases):
            data = _read_array(case.image)
            mask = _read_array(case.mask) > 0 if case.mask is not None else None
            if data.ndim != 3 or (mask is not None and mask.shape != data.shape):
                raise InputError(
                    f"{case.mask or case.image}: volume {data.shape} and mask "
                    f"{None if mask is None else mask.shape} must be 3D arrays of the same shape"
                )
            win = window or (float(np.percentile(data, 0.5)), float(np.percentile(data, 99.5)))
            self._volumes.append((data, mask, win))
            for k in range(0, data.shape[2], max(int(slice_step), 1)):
                has = bool(mask[:, :, k].any()) if mask is not None else None
                label = int(has) if has is not None else int(case.label or 0)
                self.samples.append(
                    Sample(case.image, case.mask if has else None, label, case.class_name, "", k)
                )
                self._where.append((v, k))
        logger.info("%d slices from %d volumes", len(self.samples), len(self._volumes))

    def __len__(self) -> int:
        return len(self.samples)

    def _image(self, slice_ij: np.ndarray, win: tuple[float, float]) -> torch.Tensor:
        if self.slice_transform is not None:
            return self.slice_transform(slice_ij, self.image_size)
        grey = Image.fromarray(window_to_uint8(slice_ij, *win), mode="L").convert("RGB")
        resized = grey.resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (x - self.mean) / self.std

    def _mask(self, mask_ij: np.ndarray) -> torch.Tensor:
        img = Image.fromarray(mask_ij.T.astype(np.uint8) * 255, mode="L")
        resized = img.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        return torch.from_numpy((np.asarray(resized, dtype=np.float32) / 255.0 > 0.5).astype(np.float32))

    def __getitem__(self, index: int) -> dict[str, Any]:
        v, k = self._where[index]
        data, mask, win = self._volumes[v]
        s = self.samples[index]
        m = self._mask(mask[:, :, k]) if mask is not None else torch.zeros(self.image_size, self.image_size)
        return {
            "image": self._image(data[:, :, k], win),
            "mask": m,
            "mask_known": mask is not None or s.label == 0,
            "label": int(s.label),
            "class_name": s.class_name,
            "index": int(index),
        }
