"""Foreground detection: which slices hold anything (not only air or padding).

A voxel is foreground when its value is above ``threshold``; a slice is kept when at least
``min_fraction`` of its voxels are foreground. For CT the threshold is in HU (air is about -1000,
so -500 separates body from air); for normalised images it is in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from medzsad.transforms._backend import ArrayLike

__all__ = ["foreground_mask", "ForegroundSlices", "ForegroundSlicesd"]


def foreground_mask(img: ArrayLike, threshold: float) -> ArrayLike:
    """Boolean mask ``img > threshold`` (same shape and library)."""
    return img > threshold


class ForegroundSlices(Transform):
    """Per-slice foreground test along one axis.

    Args:
        threshold: Foreground is ``value > threshold``.
        min_fraction: Fraction of foreground voxels a slice needs, in ``[0, 1]``.
        axis: Array axis the slices are cut along.

    Input: ``(..., N, ...)`` numpy or torch. Output: ``(N,)`` bool, same library, True = keep.
    """

    def __init__(self, threshold: float, min_fraction: float = 0.01, axis: int = -1) -> None:
        if not 0.0 <= min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in [0, 1] (got {min_fraction})")
        self.threshold, self.min_fraction, self.axis = float(threshold), float(min_fraction), int(axis)

    def __call__(self, img: ArrayLike) -> ArrayLike:
        """Which slices to keep."""
        fg = foreground_mask(img, self.threshold)
        if isinstance(fg, torch.Tensor):
            moved = torch.movedim(fg, self.axis, 0).reshape(fg.shape[self.axis], -1)
            frac = moved.to(torch.float64).mean(dim=1)
            return (
                frac >= self.min_fraction if moved.shape[1] else torch.zeros(moved.shape[0], dtype=torch.bool)
            )
        moved_np = np.moveaxis(np.asarray(fg), self.axis, 0).reshape(fg.shape[self.axis], -1)
        if moved_np.shape[1] == 0:
            return np.zeros(moved_np.shape[0], dtype=bool)
        return moved_np.mean(axis=1) >= self.min_fraction


class ForegroundSlicesd(MapTransform):
    """Dictionary version of :class:`ForegroundSlices`: writes the mask to ``"<key>_foreground"``."""

    def __init__(
        self,
        keys: KeysCollection,
        threshold: float,
        min_fraction: float = 0.01,
        axis: int = -1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = ForegroundSlices(threshold, min_fraction, axis)

    def __call__(self, data: Mapping[Hashable, ArrayLike]) -> dict[Hashable, ArrayLike]:
        """Add ``<key>_foreground`` for every key."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[f"{key}_foreground"] = self.transform(d[key])
        return d
