"""Intensity statistics of each lesion in scanner units (HU for CT), like TotalSegmentator's --statistics.

The statistics are taken on the scan's own voxels (the grid of the heat map and the mask), before any
windowing or normalisation, so a CT lesion reads in Hounsfield units and an MR lesion in the
scanner's arbitrary units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["LesionIntensity", "intensity_unit", "lesion_intensities"]


@dataclass(frozen=True)
class LesionIntensity:
    """Scanner values inside one lesion.

    Attributes:
        label: The lesion's value in the label map.
        mean: Mean voxel value.
        std: Standard deviation (population).
        min: Smallest voxel value.
        max: Largest voxel value.
        median: Median voxel value.
    """

    label: int
    mean: float
    std: float
    min: float
    max: float
    median: float


def intensity_unit(modality: str) -> str:
    """``HU`` for CT (values are rescaled to Hounsfield units on loading), else ``scanner units``."""
    return "HU" if modality.upper() == "CT" else "scanner units"


def lesion_intensities(labels: np.ndarray, data: np.ndarray, n_labels: int) -> list[LesionIntensity]:
    """Mean, std, min, max and median of ``data`` inside each lesion ``1..n_labels``.

    Args:
        labels: ``(I, J, K)`` integer label map (0 background).
        data: ``(I, J, K)`` scan values in scanner units, same grid as ``labels``.
        n_labels: Number of lesions (labels ``1..n_labels``).

    Raises:
        ValueError: ``labels`` and ``data`` differ in shape.
    """
    data = np.asarray(data)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if np.shape(labels) != data.shape:
        raise ValueError(f"label map shape {np.shape(labels)} != scan shape {data.shape}")
    if n_labels == 0:
        return []
    values = data.astype(np.float64)
    index = np.arange(1, n_labels + 1)
    means = ndimage.mean(values, labels, index)
    stds = ndimage.standard_deviation(values, labels, index)
    mins = ndimage.minimum(values, labels, index)
    maxs = ndimage.maximum(values, labels, index)
    medians = ndimage.median(values, labels, index)
    return [
        LesionIntensity(int(i), float(m), float(s), float(lo), float(hi), float(md))
        for i, m, s, lo, hi, md in zip(index, means, stds, mins, maxs, medians)
    ]
