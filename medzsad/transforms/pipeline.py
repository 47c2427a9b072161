"""One call from a :class:`Volume` and a :class:`Preset` to model input, and back.

``prepare_slices(volume, preset, image_size, mean, std)`` windows/normalises the volume, reorients
it to closest RAS, cuts display slices along the preset's axis, drops empty slices and produces
``(N, 3, S, S)`` CLIP input. It is :func:`cut_slices` (everything up to the display slices) then
:class:`~medzsad.transforms.clip_input.ToClipInput`; training and evaluation on volumes
(:mod:`medzsad.datasets.volumes`) call the same two steps, slice by slice, so they see exactly the
model inputs ``run`` scores. :func:`masks_to_model` takes a label volume the same way.

``PreparedSlices.to_volume(maps)`` puts ``(N, S, S)`` model maps back on the source grid: an
``(I, J, K)`` float32 array with exactly the volume's shape, indexed like ``volume.affine_ras``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medzsad.io.volume import Volume
from medzsad.transforms._backend import ArrayLike
from medzsad.transforms.clip_input import Letterbox, ToClipInput, resize_stack
from medzsad.transforms.foreground import ForegroundSlices
from medzsad.transforms.inverse import InverseInfo, masks_to_source, to_source_geometry
from medzsad.transforms.normalize import percentile_range, scale_range
from medzsad.transforms.preset import Preset
from medzsad.transforms.slicing import SliceExtractor, SliceGeometry
from medzsad.transforms.windowing import WINDOW_PRESETS_HU, HUWindow

__all__ = [
    "CutSlices",
    "PreparedSlices",
    "cut_slices",
    "prepare_slices",
    "masks_to_model",
    "intensity_range",
]

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


@dataclass(frozen=True)
class CutSlices:
    """A volume normalised and cut into display slices, before the model-size transform.

    Attributes:
        display: ``(N, H, W)`` float32 in [0, 1], the kept slices in display orientation.
        geometry: Slicing geometry (reorientation, axis, display shape, pixel spacing).
        kept: ``(N,)`` int64 canonical index of each kept slice.
        keep: ``(n_slices,)`` bool by canonical index: True for kept slices.
        window: ``(low, high)`` scanner values mapped to 0 and 1.
    """

    display: np.ndarray
    geometry: SliceGeometry
    kept: np.ndarray
    keep: np.ndarray
    window: tuple[float, float]

    @property
    def source_index(self) -> np.ndarray:
        """``(N,)`` index of each kept slice along the source axis."""
        return self.geometry.source_index(self.kept)

    def to_clip(
        self, image_size: int, mean: Sequence[float], std: Sequence[float], preset: Preset
    ) -> ToClipInput:
        """The display -> model input transform of these slices (letterbox from the preset)."""
        return ToClipInput(image_size, mean, std, self.geometry.pixel_spacing_mm, preset.letterbox)


def cut_slices(volume: Volume, preset: Preset) -> CutSlices:
    """Window/normalise, reorient to closest RAS, cut along the preset's axis, drop empty slices.

    Args:
        volume: The scan.
        preset: Intensity, axis and empty-slice settings.
    """
    low, high = intensity_range(volume, preset)
    geo = SliceExtractor(preset.axis).geometry(volume.affine_ras, volume.shape_ijk)
    # the display slices as a view of the scan (reorientation and slicing only permute and flip
    # axes); normalisation is voxel-wise, so only the kept slices are normalised and copied, once
    raw = geo.display_view(geo.reorientation.view(np.asarray(volume.data)))
    normalized: np.ndarray | None = None
    if preset.skip_empty_slices:
        fg = preset.foreground
        if fg.space != "raw":
            normalized = np.asarray(scale_range(raw, low, high), dtype=np.float32)
        basis = raw if normalized is None else normalized
        keep = np.asarray(ForegroundSlices(fg.threshold, fg.min_fraction, axis=0)(basis))
    else:
        keep = np.ones(geo.n_slices, dtype=bool)
    kept = np.flatnonzero(keep)
    if normalized is not None:
        display = np.ascontiguousarray(normalized[kept], dtype=np.float32)
    else:
        subset = raw if kept.size == geo.n_slices else raw[kept]
        display = np.ascontiguousarray(scale_range(subset, low, high), dtype=np.float32)
    return CutSlices(display, geo, kept, keep, (low, high))


def masks_to_model(mask_ijk: np.ndarray, cut: CutSlices, layout: Letterbox) -> torch.Tensor:
    """A label volume on the source grid -> ``(N, S, S)`` float32 {0, 1} masks of the kept slices.

    The same reorientation, slicing and letterbox as the images, resized with nearest neighbour.

    Args:
        mask_ijk: ``(I, J, K)`` labels (non-zero is foreground), the volume's grid.
        cut: The volume's :class:`CutSlices`.
        layout: The letterbox of the image transform (``to_clip.layout(geometry.display_shape)``).
    """
    geo = cut.geometry
    canonical = geo.reorientation.apply((np.asarray(mask_ijk) > 0).astype(np.float32))
    x = torch.from_numpy(np.ascontiguousarray(geo.to_display(canonical)[cut.kept], dtype=np.float32))
    if layout.padded != layout.size:
        padded = torch.zeros((x.shape[0], *layout.padded), dtype=torch.float32)
        (top, left), (h, w) = layout.offset, layout.size
        padded[:, top : top + h, left : left + w] = x
        x = padded
    return (resize_stack(x, (layout.image_size, layout.image_size), "nearest") > 0.5).to(torch.float32)


def prepare_slices(
    volume: Volume,
    preset: Preset,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    allocate: Callable[[tuple[int, ...]], torch.Tensor | None] | None = None,
) -> PreparedSlices:
    """Preprocess a volume into model input.

    Args:
        volume: The scan.
        preset: Intensity, axis, empty-slice and letterbox settings.
        image_size: Model input size ``S``.
        mean: The model's per-channel normalisation mean (3 values).
        std: The model's per-channel normalisation std (3 values).
        allocate: Makes the ``(N, 3, S, S)`` float32 array the model input is written into (e.g.
            in shared memory); ``None``, or an allocator returning ``None``: a new tensor.

    Returns:
        :class:`PreparedSlices` (``images`` may have ``N = 0`` when every slice is empty).
    """
    cut = cut_slices(volume, preset)
    geo, kept, keep = cut.geometry, cut.kept, cut.keep
    n = geo.n_slices
    to_clip = cut.to_clip(image_size, mean, std, preset)
    out = allocate((int(kept.size), 3, image_size, image_size)) if allocate is not None else None
    images = (
        to_clip(cut.display, out)
        if kept.size
        else torch.zeros((0, 3, image_size, image_size), dtype=torch.float32)
    )
    skipped = np.ones(n, dtype=bool)
    skipped[geo.source_index(np.arange(n))[keep]] = False
    info = InverseInfo(geo, to_clip.layout(geo.display_shape), kept)
    log.debug("prepared %d of %d %s slices (preset %s)", kept.size, n, preset.axis, preset.name)
    return PreparedSlices(
        images, cut.source_index, geo.source_axis, n, skipped, cut.window, preset.axis, preset.name, info
    )
