"""The way back: model-size maps ``(N, S, S)`` -> the source voxel grid ``(I, J, K)``.

Each map is resized to the letterboxed slice size, the padding is cut off, the display
orientation is undone and the slice is put at its index; the canonical reorientation is then
inverted, so the result has exactly the source's shape and is indexed like its affine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from medzsad.errors import GeometryError
from medzsad.transforms._backend import ArrayLike
from medzsad.transforms.clip_input import Letterbox, resize_stack
from medzsad.transforms.slicing import SliceGeometry

__all__ = ["InverseInfo", "to_source_geometry", "masks_to_source"]


@dataclass(frozen=True)
class InverseInfo:
    """Everything needed to put model-size maps back.

    Attributes:
        geometry: Slicing geometry (reorientation, axis, display shape).
        letterbox: Padding and model size.
        canonical_index: ``(N,)`` canonical slice index of each map.
        between: Canonical indices of slices not scored but inside the body (strided axes): their
            heat is interpolated from the scored slices on either side.
    """

    geometry: SliceGeometry
    letterbox: Letterbox
    canonical_index: np.ndarray
    between: np.ndarray | None = None

    @property
    def source_shape(self) -> tuple[int, int, int]:
        """``(I, J, K)`` of the source volume."""
        return self.geometry.reorientation.source_shape

    @property
    def source_affine(self) -> np.ndarray:
        """Voxel -> RAS affine of the source volume."""
        return self.geometry.reorientation.source_affine


#: Maps resized and put back at a time: the only temporaries are one chunk at padded size.
_CHUNK = 16


def _to_source(
    maps: ArrayLike,
    info: InverseInfo,
    mode: str,
    dtype: npt.DTypeLike,
    fill: float,
    convert: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Resize ``_CHUNK`` maps at a time to the letterboxed size, crop, and write them into the source grid.

    The result is the same as resizing the whole stack at once (every map is resized on its own),
    without a stack of maps at padded size and a reoriented copy of the volume.

    Returns:
        The ``(I, J, K)`` array and its canonical-slice view (:meth:`SliceGeometry.source_canvas`).
    """
    x = maps if isinstance(maps, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(maps))
    x = x.detach()
    s = info.letterbox.image_size
    idx = np.asarray(info.canonical_index, dtype=np.int64)
    if x.ndim != 3 or tuple(x.shape[1:]) != (s, s) or x.shape[0] != len(idx):
        raise GeometryError(
            f"maps of shape {tuple(x.shape)} do not match {len(idx)} slices at model size {s}"
        )
    (top, left), (h, w) = info.letterbox.offset, info.letterbox.size
    geo = info.geometry
    out, stack = geo.source_canvas(dtype, fill)
    for a in range(0, len(idx), _CHUNK):
        chunk = resize_stack(x[a : a + _CHUNK].to("cpu", torch.float32), info.letterbox.padded, mode)
        geo.put_display(stack, convert(chunk[:, top : top + h, left : left + w].numpy()), idx[a : a + _CHUNK])
    return out, stack


def to_source_geometry(maps: ArrayLike, info: InverseInfo, *, fill: float = 0.0) -> np.ndarray:
    """Bilinear inverse of the slicing for continuous maps.

    Args:
        maps: ``(N, S, S)`` float maps at model size (numpy or torch), one per kept slice.
        info: From the forward pass.
        fill: Value of slices that were not scored.

    Returns:
        ``(I, J, K)`` float32 in the source grid (same shape as the source volume): a new array.

    Raises:
        GeometryError: ``maps`` does not match ``info``.
    """
    out, stack = _to_source(maps, info, "bilinear", np.float32, fill, lambda c: c)
    info.geometry.interpolate_between(stack, info.canonical_index, info.between)
    return out


def masks_to_source(masks: ArrayLike, info: InverseInfo) -> np.ndarray:
    """Nearest-neighbour inverse for label masks: ``(N, S, S)`` -> ``(I, J, K)`` uint8 (0 elsewhere)."""
    return _to_source(masks, info, "nearest", np.uint8, 0, lambda c: np.rint(c).astype(np.uint8))[0]
