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
from dataclasses import dataclass, field
from typing import NamedTuple

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
    "prepare_axes",
    "PreparedAxes",
    "strided",
    "masks_to_model",
    "intensity_range",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedSlices:
    """Model input for one volume and the way back.

    Attributes:
        images: ``(N, 3, S, S)`` float32 torch, CLIP-normalised, one per kept slice (``(N, 1, S, S)``
            model-size slices in ``[0, 1]`` when prepared with ``channels=1``).
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

    @property
    def covered(self) -> np.ndarray:
        """``(n_slices,)`` bool by source index: slices with heat (scored, or interpolated between)."""
        out = ~self.skipped
        between = self.inverse.between
        if between is not None and len(between):
            out[self.inverse.geometry.source_index(between)] = True
        return out


class PreparedAxes(NamedTuple):
    """Model input of several axes of one volume.

    Attributes:
        images: ``(N_total, C, S, S)`` float32 (``C`` 3, or 1 with ``channels=1``): every axis's
            slices, axis after axis.
        axes: Each axis's :class:`PreparedSlices` (their ``images`` are views of ``images``).
    """

    images: torch.Tensor
    axes: tuple[PreparedSlices, ...]


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


#: Slices normalised (and tested for foreground) at a time while cutting.
_CUT_CHUNK = 16


@dataclass(frozen=True)
class CutSlices:
    """A volume cut into display slices, before normalisation and the model-size transform.

    Nothing is copied when cutting: :attr:`raw` is a view of the scan, and the kept slices are
    normalised a few at a time when they are converted (:meth:`display_slices`), so no stack of
    display slices exists beside the scan and the model input.

    Attributes:
        raw: ``(n_slices, H, W)`` the scan's values in display orientation (a view of the scan).
        geometry: Slicing geometry (reorientation, axis, display shape, pixel spacing).
        kept: ``(N,)`` int64 canonical index of each kept slice.
        keep: ``(n_slices,)`` bool by canonical index: True for kept slices.
        window: ``(low, high)`` scanner values mapped to 0 and 1.
        between: Canonical indices of non-empty slices left out by a stride (ascending).
    """

    raw: np.ndarray
    geometry: SliceGeometry
    kept: np.ndarray
    keep: np.ndarray
    window: tuple[float, float]
    between: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def display_slices(self, a: int = 0, b: int | None = None) -> np.ndarray:
        """Kept slices ``a:b`` normalised: ``(b - a, H, W)`` float32 in [0, 1], a new C-contiguous array."""
        low, high = self.window
        return np.ascontiguousarray(scale_range(self.raw[self.kept[a:b]], low, high), dtype=np.float32)

    @property
    def source_index(self) -> np.ndarray:
        """``(N,)`` index of each kept slice along the source axis."""
        return self.geometry.source_index(self.kept)

    def to_clip(
        self, image_size: int, mean: Sequence[float], std: Sequence[float], preset: Preset, channels: int = 3
    ) -> ToClipInput:
        """The display -> model input transform of these slices (letterbox from the preset)."""
        return ToClipInput(image_size, mean, std, self.geometry.pixel_spacing_mm, preset.letterbox, channels)


def strided(kept: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``stride``-th of the ascending canonical indices ``kept``, and always the last one.

    Returns:
        ``(scored, between)``: the indices kept for scoring and the others (both ascending).
    """
    if stride <= 1 or kept.size <= 2:
        return kept, np.zeros(0, dtype=np.int64)
    pick = np.zeros(kept.size, dtype=bool)
    pick[::stride] = True
    pick[-1] = True  # the last non-empty slice: heat is interpolated, never extrapolated
    return kept[pick], kept[~pick]


def cut_slices(
    volume: Volume, preset: Preset, *, stride: int = 1, window: tuple[float, float] | None = None
) -> CutSlices:
    """Window/normalise, reorient to closest RAS, cut along the preset's axis, drop empty slices.

    Args:
        volume: The scan.
        preset: Intensity, axis and empty-slice settings.
        stride: Keep every ``stride``-th non-empty slice (canonical order) and the last one; the
            others are listed in :attr:`CutSlices.between`.
        window: ``(low, high)`` when already computed for this volume and preset (several axes).
    """
    low, high = window if window is not None else intensity_range(volume, preset)
    geo = SliceExtractor(preset.axis).geometry(volume.affine_ras, volume.shape_ijk)
    # the display slices as a view of the scan (reorientation and slicing only permute and flip
    # axes); normalisation is voxel-wise, so it is done a few slices at a time, when needed
    raw = geo.display_view(geo.reorientation.view(np.asarray(volume.data)))
    keep = _foreground(raw, preset, low, high) if preset.skip_empty_slices else np.ones(geo.n_slices, bool)
    kept, between = strided(np.flatnonzero(keep), stride)
    if between.size:
        keep = np.zeros(geo.n_slices, dtype=bool)
        keep[kept] = True
    return CutSlices(raw, geo, kept, keep, (low, high), between)


def _foreground(raw: np.ndarray, preset: Preset, low: float, high: float) -> np.ndarray:
    """``(n_slices,)`` bool: the slices of ``raw`` with foreground, tested a few slices at a time."""
    fg = preset.foreground
    test = ForegroundSlices(fg.threshold, fg.min_fraction, axis=0)
    parts = [np.zeros(0, dtype=bool)]
    for a in range(0, raw.shape[0], _CUT_CHUNK):
        chunk = raw[a : a + _CUT_CHUNK]
        basis = chunk if fg.space == "raw" else np.asarray(scale_range(chunk, low, high), dtype=np.float32)
        parts.append(np.asarray(test(basis), dtype=bool))
    return np.concatenate(parts)


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
    """Preprocess a volume into model input along the preset's axis.

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
    return prepare_axes(volume, preset, image_size, mean, std, allocate=allocate).axes[0]


def prepare_axes(
    volume: Volume,
    preset: Preset,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    extra_axes: Sequence[str] = (),
    stride: int = 1,
    allocate: Callable[[tuple[int, ...]], torch.Tensor | None] | None = None,
    channels: int = 3,
) -> PreparedAxes:
    """Preprocess a volume along the preset's axis and each of ``extra_axes``, into ONE model input.

    The preset's axis keeps every non-empty slice; an extra axis every ``stride``-th (see
    :func:`strided`). Every axis is cut in the same canonical (closest RAS) orientation with the
    same window, letterbox and model-size transform. The model inputs of all axes are written into
    one ``(N_total, channels, S, S)`` tensor (one allocation, e.g. one shared-memory segment): the
    ``images`` of each axis's :class:`PreparedSlices` are consecutive views of it, preset's axis
    first.

    Args:
        volume: The scan.
        preset: Intensity, axis, empty-slice and letterbox settings.
        image_size: Model input size ``S``.
        mean: CLIP normalisation mean (3 values).
        std: CLIP normalisation std (3 values).
        extra_axes: Further plane names (``coronal``, ...), each different from the preset's.
        stride: Slice stride of the extra axes.
        allocate: See :func:`prepare_slices` (called once, with the total shape).
        channels: 3: the model input; 1: the model-size slices in ``[0, 1]``, a third of the memory
            (:func:`~medzsad.transforms.clip_input.clip_normalise` makes a batch's model input).
    """
    window = intensity_range(volume, preset)
    presets = [preset] + [preset.updated(axis=a) for a in extra_axes]
    cuts = [
        cut_slices(volume, p, stride=1 if i == 0 else stride, window=window) for i, p in enumerate(presets)
    ]
    total = sum(int(c.kept.size) for c in cuts)
    shape = (total, channels, image_size, image_size)
    out = allocate(shape) if allocate is not None and total else None
    if out is None:
        out = torch.empty(shape, dtype=torch.float32)
    prepared: list[PreparedSlices] = []
    start = 0
    for p, cut in zip(presets, cuts):  # a cut is a view of the scan: nothing to free between axes
        n = int(cut.kept.size)
        prepared.append(_prepared(cut, p, out[start : start + n], (image_size, mean, std, channels)))
        start += n
    return PreparedAxes(out, tuple(prepared))


def _prepared(
    cut: CutSlices,
    preset: Preset,
    out: torch.Tensor,
    model: tuple[int, Sequence[float], Sequence[float], int],
) -> PreparedSlices:
    """One axis's :class:`PreparedSlices`, its model input written into ``out``."""
    geo, kept, keep = cut.geometry, cut.kept, cut.keep
    n = geo.n_slices
    image_size, mean, std, channels = model
    to_clip = cut.to_clip(image_size, mean, std, preset, channels)
    for a in range(0, int(kept.size), _CUT_CHUNK):  # each slice is converted on its own: same result
        to_clip(cut.display_slices(a, a + _CUT_CHUNK), out[a : a + _CUT_CHUNK])
    skipped = np.ones(n, dtype=bool)
    skipped[geo.source_index(np.arange(n))[keep]] = False
    info = InverseInfo(geo, to_clip.layout(geo.display_shape), kept, cut.between)
    log.debug("prepared %d of %d %s slices (preset %s)", kept.size, n, preset.axis, preset.name)
    return PreparedSlices(
        out, cut.source_index, geo.source_axis, n, skipped, cut.window, preset.axis, preset.name, info
    )
