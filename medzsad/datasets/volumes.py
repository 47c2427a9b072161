"""Labelled 2D slices drawn from CT/MRI volumes with (optional) anomaly mask volumes.

A CSV lists the cases: ``image`` (a volume file or a DICOM study folder), optional ``mask``
(label volume on the same grid, non-zero is anomalous), optional ``label`` (case label, used for
slices when there is no mask) and ``class``.

The slices are exactly the model inputs ``medzsad run`` scores: each volume is read through
:func:`medzsad.transforms.preset_reading.read_with_preset` (the reading ``run`` uses: the preset
from the headers, its series rules, :mod:`medzsad.io`'s loaders) and prepared by the same
preset pipeline (:func:`medzsad.transforms.pipeline.cut_slices`, then
:class:`~medzsad.transforms.clip_input.ToClipInput`: one window, reorientation to closest RAS,
cut along the preset's axis, empty slices dropped, one letterbox and resize). The preset is
chosen per case as ``run`` does with ``preset: auto`` (modality, BodyPartExamined, description;
else from the data), or named; ``window`` overrides its intensity window. Mask volumes follow
the same geometry with nearest-neighbour resizing. Each kept slice becomes one sample: anomalous
with its mask slice when the mask has voxels there, normal otherwise; without a mask it takes the
case label and trains the image loss only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medzsad.datasets.layouts import _read_csv_rows, parse_label
from medzsad.datasets.samples import Sample
from medzsad.errors import InputError
from medzsad.io.readers import load_volume
from medzsad.io.volume import Volume
from medzsad.transforms.clip_input import ToClipInput
from medzsad.transforms.pipeline import CutSlices, cut_slices, masks_to_model
from medzsad.transforms.preset import Preset, auto_preset_name, load_preset
from medzsad.transforms.preset_reading import read_with_preset

__all__ = ["VolumeCase", "read_volume_cases", "VolumeSliceDataset", "volume_preset"]

logger = logging.getLogger(__name__)


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


def volume_preset(
    modality: str,
    body_part: str = "",
    description: str = "",
    *,
    preset: str = "auto",
    window: tuple[float, float] | None = None,
) -> Preset:
    """The preset ``run`` would use (``auto``: from the headers), with ``window`` replacing its intensity.

    Args:
        modality: Modality of the scan (from the header, else guessed from the data).
        body_part: BodyPartExamined.
        description: SeriesDescription.
        preset: A preset name, or ``auto``.
        window: ``(low, high)`` scanner values mapped to 0 and 1.

    Raises:
        ConfigError: Unknown preset or invalid window.
    """
    name = auto_preset_name(modality, body_part, description) if preset == "auto" else preset
    chosen = load_preset(name)
    if window is None:
        return chosen
    lo, hi = float(window[0]), float(window[1])
    return chosen.updated(window={"center": (lo + hi) / 2.0, "width": hi - lo})


@dataclass(frozen=True)
class _PreparedVolume:
    cut: CutSlices
    to_clip: ToClipInput
    masks: torch.Tensor | None  # (N, S, S) float32 {0, 1}


def _load_mask(case: VolumeCase, volume: Volume) -> np.ndarray | None:
    """The case's mask as an ``(I, J, K)`` bool array on the scan's grid, or None without one."""
    if case.mask is None:
        return None
    mask = load_volume(case.mask)
    same = mask.shape_ijk == volume.shape_ijk and np.allclose(mask.affine_ras, volume.affine_ras, atol=1e-3)
    if not same:
        raise InputError(
            f"{case.mask}: mask volume {mask.shape_ijk} and scan {case.image} {volume.shape_ijk} must "
            "have the same shape and geometry (affine)"
        )
    return np.asarray(mask.data) > 0


def _slices_with_mask(mask: np.ndarray, cut: CutSlices) -> np.ndarray:
    """``(N,)`` bool: kept slices with mask voxels, at the source resolution."""
    geo = cut.geometry
    canonical = np.asarray(geo.reorientation.apply(mask))
    planes = np.moveaxis(canonical, geo.canonical_axis, 0)[cut.kept]
    return np.asarray(planes.reshape(len(cut.kept), -1).any(axis=1))


class VolumeSliceDataset(Dataset):
    """Slices of volumes as a torch dataset with the items of :class:`~medzsad.datasets.SampleDataset`.

    ``samples`` holds one :class:`Sample` per kept slice (``image``/``mask`` are the volume files,
    ``slice_index`` the slice's index along the source voxel axis the preset cuts along), usable by
    the trainer and the evaluation like 2D samples. ``dataset[i]["image"]`` equals the model input
    ``medzsad run`` builds for that slice.

    Args:
        cases: the volumes.
        image_size: model input side ``S``.
        mean: backbone normalisation mean (3,).
        std: backbone normalisation std (3,).
        window: intensity window ``(lo, hi)``, e.g. ``(-160, 240)`` HU; default the preset's.
        slice_step: keep every n-th of the kept slices (1: all).
        preset: preset name, or ``auto`` (as ``run``: from the modality, else from the data).

    Raises:
        InputError: An unreadable volume, or a mask on another grid.
        ConfigError: Unknown preset or invalid window.
    """

    def __init__(
        self,
        cases: Sequence[VolumeCase],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        window: tuple[float, float] | None = None,
        slice_step: int = 1,
        preset: str = "auto",
    ) -> None:
        self.image_size = int(image_size)
        self._volumes: list[_PreparedVolume] = []
        self.samples: list[Sample] = []
        self._where: list[tuple[int, int]] = []
        for v, case in enumerate(cases):
            read = read_with_preset(
                case.image,
                lambda m, b, d: volume_preset(m, b, d, preset=preset, window=window),
                auto=preset == "auto",
            )
            volume, p = read.volume, read.preset
            cut = cut_slices(volume, p)
            to_clip = cut.to_clip(self.image_size, mean, std, p)
            mask = _load_mask(case, volume)
            has = masks = None
            if mask is not None:
                has = _slices_with_mask(mask, cut)
                masks = masks_to_model(mask, cut, to_clip.layout(cut.geometry.display_shape))
            self._volumes.append(_PreparedVolume(cut, to_clip, masks))
            src = cut.source_index
            for n in range(0, len(cut.kept), max(int(slice_step), 1)):
                anomalous = bool(has[n]) if has is not None else None
                label = int(anomalous) if anomalous is not None else int(case.label or 0)
                mask_path = case.mask if anomalous else None
                self.samples.append(Sample(case.image, mask_path, label, case.class_name, "", int(src[n])))
                self._where.append((v, n))
        logger.info("%d slices from %d volumes", len(self.samples), len(self._volumes))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        v, n = self._where[index]
        prepared = self._volumes[v]
        s = self.samples[index]
        image = prepared.to_clip(prepared.cut.display_slices(n, n + 1))[0]
        if prepared.masks is not None:
            m = prepared.masks[n]
        else:
            m = torch.zeros(self.image_size, self.image_size)
        return {
            "image": image,
            "mask": m,
            "mask_known": prepared.masks is not None or s.label == 0,
            "label": int(s.label),
            "class_name": s.class_name,
            "index": int(index),
        }
