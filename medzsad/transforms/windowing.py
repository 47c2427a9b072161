"""CT intensity windowing: HU -> [0, 1] with named presets or an explicit center/width.

``y = clip((x - (center - width / 2)) / width, 0, 1)``: values at or below the window's lower edge
map to 0 and at or above the upper edge to 1 (the DICOM linear VOI function, PS3.3 C.11.2.1.2,
without the 0.5 offset of integer displays).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from medzsad.errors import ConfigError
from medzsad.transforms._backend import ArrayLike, as_float32

__all__ = ["WINDOW_PRESETS_HU", "HUWindow", "resolve_window", "WindowCT", "WindowCTd"]

# (center, width) in HU. Sources: Radiopaedia "Windowing (CT)" typical values.
WINDOW_PRESETS_HU: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (50.0, 400.0),
    "liver": (30.0, 150.0),
    "bone": (400.0, 1800.0),
}


@dataclass(frozen=True)
class HUWindow:
    """A window in scanner units (HU for CT)."""

    center: float
    width: float

    @property
    def low(self) -> float:
        """Lower edge ``center - width / 2``."""
        return self.center - self.width / 2.0

    @property
    def high(self) -> float:
        """Upper edge ``center + width / 2``."""
        return self.center + self.width / 2.0


def resolve_window(
    preset: str | None = None, center: float | None = None, width: float | None = None
) -> HUWindow:
    """A window from a preset name or an explicit center/width.

    Raises:
        ConfigError: Unknown preset, both or neither given, or width <= 0.
    """
    if preset is not None and (center is not None or width is not None):
        raise ConfigError("give a window preset or center/width, not both")
    if preset is not None:
        if preset not in WINDOW_PRESETS_HU:
            raise ConfigError(f"unknown window preset {preset!r}; choose one of {sorted(WINDOW_PRESETS_HU)}")
        return HUWindow(*WINDOW_PRESETS_HU[preset])
    if center is None or width is None:
        raise ConfigError("a window needs a preset name or both center and width")
    if not width > 0:
        raise ConfigError(f"window width must be > 0 (got {width})")
    return HUWindow(float(center), float(width))


class WindowCT(Transform):
    """Map HU to ``[0, 1]`` through a window.

    Args:
        preset: Name in :data:`WINDOW_PRESETS_HU` (``brain``, ``subdural``, ``stroke``, ``lung``,
            ``mediastinum``, ``abdomen``, ``liver``, ``bone``).
        center: Window center in HU (with ``width``, instead of ``preset``).
        width: Window width in HU.

    Input: any shape, numpy or torch. Output: same shape and library, float32 in ``[0, 1]``.
    """

    def __init__(
        self, preset: str | None = None, center: float | None = None, width: float | None = None
    ) -> None:
        self.window = resolve_window(preset, center, width)

    def __call__(self, img: ArrayLike) -> ArrayLike:
        """Apply the window."""
        x = as_float32(img)
        low, width = np.float32(self.window.low), np.float32(self.window.width)
        if isinstance(x, torch.Tensor):
            return ((x - float(low)) / float(width)).clamp_(0.0, 1.0)
        return np.clip((x - low) / width, np.float32(0.0), np.float32(1.0))


class WindowCTd(MapTransform):
    """Dictionary version of :class:`WindowCT` (returns a new dict; the input is not changed)."""

    def __init__(
        self,
        keys: KeysCollection,
        preset: str | None = None,
        center: float | None = None,
        width: float | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = WindowCT(preset, center, width)

    def __call__(self, data: Mapping[Hashable, ArrayLike]) -> dict[Hashable, ArrayLike]:
        """Window every key."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d
