"""MR intensity normalisation by percentiles: ``[p_low, p_high] -> [0, 1]``, clipped.

Percentiles are taken over the whole array, or only over values > 0 (``nonzero=True``, so that
the air/padding of an MR volume does not set the lower percentile).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from medzsad.errors import ConfigError
from medzsad.transforms._backend import ArrayLike, as_float32, to_numpy

__all__ = ["NormalizeMR", "NormalizeMRd", "percentile_range"]


def percentile_range(img: ArrayLike, lower: float, upper: float, nonzero: bool) -> tuple[float, float]:
    """``(p_lower, p_upper)`` of ``img`` (over values > 0 when ``nonzero``; all values if none are)."""
    x = to_numpy(img).astype(np.float64).ravel()
    if nonzero and np.any(x > 0):
        x = x[x > 0]
    if x.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(x, [lower, upper])
    return float(lo), float(hi)


class NormalizeMR(Transform):
    """Scale intensities so that percentile ``lower`` -> 0 and ``upper`` -> 1, clipped to ``[0, 1]``.

    Args:
        lower: Lower percentile in ``[0, 100)``.
        upper: Upper percentile in ``(lower, 100]``.
        nonzero: Compute percentiles over values > 0 only.

    Input: any shape, numpy or torch. Output: same shape and library, float32 in ``[0, 1]``;
    a constant image maps to 0.
    """

    def __init__(self, lower: float = 1.0, upper: float = 99.0, nonzero: bool = True) -> None:
        if not 0.0 <= lower < upper <= 100.0:
            raise ConfigError(f"percentiles must satisfy 0 <= lower < upper <= 100 (got {lower}, {upper})")
        self.lower, self.upper, self.nonzero = float(lower), float(upper), nonzero

    def __call__(self, img: ArrayLike) -> ArrayLike:
        """Normalise."""
        lo, hi = percentile_range(img, self.lower, self.upper, self.nonzero)
        return scale_range(img, lo, hi)


def scale_range(img: ArrayLike, lo: float, hi: float) -> ArrayLike:
    """``clip((img - lo) / (hi - lo), 0, 1)`` as float32; all zeros when ``hi <= lo``."""
    x = as_float32(img)
    if hi <= lo:
        return torch.zeros_like(x) if isinstance(x, torch.Tensor) else np.zeros_like(x)
    if isinstance(x, torch.Tensor):
        return ((x - lo) / (hi - lo)).clamp_(0.0, 1.0)
    out = np.subtract(x, np.float32(lo), dtype=np.float32)  # one new array, then in place
    out /= np.float32(hi - lo)
    return np.clip(out, np.float32(0.0), np.float32(1.0), out=out)


class NormalizeMRd(MapTransform):
    """Dictionary version of :class:`NormalizeMR` (returns a new dict)."""

    def __init__(
        self,
        keys: KeysCollection,
        lower: float = 1.0,
        upper: float = 99.0,
        nonzero: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = NormalizeMR(lower, upper, nonzero)

    def __call__(self, data: Mapping[Hashable, ArrayLike]) -> dict[Hashable, ArrayLike]:
        """Normalise every key."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d
