"""Intensity statistics of each lesion in scanner units (HU for CT), like TotalSegmentator's --statistics.

The statistics are taken on the scan's own voxels (the grid of the heat map and the mask), before any
windowing or normalisation, so a CT lesion reads in Hounsfield units and an MR lesion in the
scanner's arbitrary units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    inside = labels > 0
    groups = _LabelGroups(np.asarray(labels)[inside], data[inside].astype(np.float64), n_labels)
    return [groups.stats(i) for i in range(1, n_labels + 1)]


class _LabelGroups:
    """The lesion voxels' values grouped by label: each lesion is one contiguous run.

    Only the voxels inside a lesion are touched, so the cost follows the lesions' size, not the
    scan's (``scipy.ndimage.minimum``/``median`` sort the whole volume: ~30 s for 512x512x300).
    The grouping is a stable sort of the small-integer labels (a radix sort in numpy).
    """

    def __init__(self, labels: np.ndarray, values: np.ndarray, n_labels: int) -> None:
        """``values`` (float64, one per lesion voxel) become this object's: they may be kept as they are."""
        counts = np.bincount(labels, minlength=n_labels + 1)[: n_labels + 1]
        self.ends = np.cumsum(counts)
        self.counts = counts
        sums = np.bincount(labels, weights=values, minlength=n_labels + 1)[: n_labels + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.means = sums / counts
            centred = self.means[labels]  # then (value - mean) ** 2 in the same array
            np.subtract(values, centred, out=centred)
            np.square(centred, out=centred)
            self.vars = np.bincount(labels, weights=centred, minlength=n_labels + 1)[: n_labels + 1] / counts
        del centred
        # voxels already in label order (one lesion, or lesions one after another): no sort, no copy
        in_order = bool(np.all(labels[1:] >= labels[:-1]))
        self.values = values if in_order else values[np.argsort(labels, kind="stable")]

    def stats(self, label: int) -> LesionIntensity:
        n = int(self.counts[label])
        if n == 0:
            nan = float("nan")
            return LesionIntensity(label, nan, nan, nan, nan, nan)
        run = self.values[int(self.ends[label]) - n : int(self.ends[label])]
        return LesionIntensity(
            label,
            float(self.means[label]),
            float(np.sqrt(self.vars[label])),
            float(run.min()),
            float(run.max()),
            float(np.median(run, overwrite_input=True)),  # reorders only this lesion's run, in place
        )
