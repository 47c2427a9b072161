"""One call from a :class:`Volume` and a :class:`Preset` to model input, and back.

``prepare_slices(volume, preset, image_size, mean, std)`` windows/normalises the volume, reorients
it to closest RAS, cuts display slices along the preset's axis, drops empty slices and produces
``(N, 3, S, S)`` CLIP input. ``PreparedSlices.to_volume(maps)`` puts ``(N, S, S)`` model maps back
on the source grid: an ``(I, J, K)`` float32 array with exactly the volume's shape, indexed like
``volume.affine_ras``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medzsad.io.volume import Volume
from medzsad.transforms._backend import ArrayLike
from medzsad.transforms.clip_input import ToClipInput
from medzsad.transforms.foreground import ForegroundSlices
from medzsad.transforms.inverse import InverseInfo, masks_to_source, to_source_geometry
from medzsad.transforms.normalize import percentile_range, scale_range
from medzsad.transforms.preset import Preset
from medzsad.transforms.slicing import SliceExtractor
from medzsad.transforms.windowing import WINDOW_PRESETS_HU, HUWindow

__all__ = ["PreparedSlices", "prepare_slices", "intensity_range"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedSlices:
    """Model input for one volume and the way back.

    Attributes:
        images: ``(N, 3, S, S)`` float32 torch, CLIP-normalised, one per kept slice.
        slice_index: ``(N,)`` int64, index along :attr:`source_axis` of the source volume.
        source_axis: Source voxel axis (0, 1, 2) the slices are cut along.
        n_slices: Slices along that axis.
        skipped: ``(n_slices,)`` bool indexed by source index: True for slices not scored.
        window: ``(low, high)`` scanner values mapped to 0 and 1 (HU for CT).
        axis: Plane name (``axial``, ``coronal``, ``sagittal``).
        preset: Name of the preset used.
        inverse: :class:`InverseInfo` for :meth:`to_volume`.
    """

    images: torch.Tensor
    slice_index: np.ndarray
    source_axis: int
    n_slices: int
    skipped: np.ndarray
    window: tuple[float, float]
    axis: str
    preset: str
    inverse: InverseInfo

    def to_volume(self, maps: ArrayLike, fill: float = 0.0) -> np.ndarray:
        """``(N, S, S)`` maps -> ``(I, J, K)`` float32 on the source grid (skipped slices = ``fill``)."""
        return to_source_geometry(maps, self.inverse, fill=fill)

    def to_mask(self, masks: ArrayLike) -> np.ndarray:
        """``(N, S, S)`` label masks -> ``(I, J, K)`` uint8 on the source grid (nearest neighbour)."""
        return masks_to_source(masks, self.inverse)


def intensity_range(volume: Volume, preset: Preset) -> tuple[float, float]:
    """``(low, high)`` in scanner units that the preset maps to ``[0, 1]`` for this volume."""
    it = preset.intensity
    if it.window is not None:
        w = (
            HUWindow(*WINDOW_PRESETS_HU[it.window])
            if isinstance(it.window, str)
            else HUWindow(it.window.center, it.window.width)
        )
        return w.low, w.high
    lo, hi = it.percentiles  # type: ignore[misc]
    return percentile_range(volume.data, lo, hi, it.nonzero)


def prepare_slices(
    volume: Volume,
    preset: Preset,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> PreparedSlices:
    """Preprocess a volume into model input.

    Args:
        volume: The scan.
        preset: Intensity, axis, empty-slice and letterbox settings.
        image_size: Model input size ``S``.
        mean: The model's per-channel normalisation mean (3 values).
        std: The model's per-channel normalisation std (3 values).

    Returns:
        :class:`PreparedSlices` (``images`` may have ``N = 0`` when every slice is empty).
    """
    low, high = intensity_range(volume, preset)
    normalized = np.asarray(scale_range(volume.data, low, high), dtype=np.float32)
    extractor = SliceExtractor(preset.axis)
    geo = extractor.geometry(volume.affine_ras, volume.shape_ijk)
    canonical = geo.reorientation.apply(normalized)
    n = geo.n_slices
    if preset.skip_empty_slices:
        fg = preset.foreground
        basis = geo.reorientation.apply(volume.data) if fg.space == "raw" else canonical
        keep = np.asarray(ForegroundSlices(fg.threshold, fg.min_fraction, axis=geo.canonical_axis)(basis))
    else:
        keep = np.ones(n, dtype=bool)
    kept = np.flatnonzero(keep)
    display = geo.to_display(canonical)[kept]
    to_clip = ToClipInput(image_size, mean, std, geo.pixel_spacing_mm, preset.letterbox)
    images = (
        to_clip(display) if kept.size else torch.zeros((0, 3, image_size, image_size), dtype=torch.float32)
    )
    src_index = geo.source_index(kept)
    skipped = np.ones(n, dtype=bool)
    skipped[geo.source_index(np.arange(n))[keep]] = False
    info = InverseInfo(geo, to_clip.layout(geo.display_shape), kept)
    log.debug("prepared %d of %d %s slices (preset %s)", kept.size, n, preset.axis, preset.name)
    return PreparedSlices(
        images, src_index, geo.source_axis, n, skipped, (low, high), preset.axis, preset.name, info
    )
