"""The way back: model-size maps ``(N, S, S)`` -> the source voxel grid ``(I, J, K)``.

Each map is resized to the letterboxed slice size, the padding is cut off, the display
orientation is undone and the slice is put at its index; the canonical reorientation is then
inverted, so the result has exactly the source's shape and is indexed like its affine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


def _to_display_size(maps: ArrayLike, info: InverseInfo, mode: str) -> np.ndarray:
    x = maps if isinstance(maps, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(maps))
    x = x.detach().to("cpu", torch.float32)
    s = info.letterbox.image_size
    if x.ndim != 3 or tuple(x.shape[1:]) != (s, s) or x.shape[0] != len(info.canonical_index):
        raise GeometryError(
            f"maps of shape {tuple(x.shape)} do not match {len(info.canonical_index)} slices "
            f"at model size {s}"
        )
    x = resize_stack(x, info.letterbox.padded, mode)
    (top, left), (h, w) = info.letterbox.offset, info.letterbox.size
    return x[:, top : top + h, left : left + w].numpy()


def to_source_geometry(maps: ArrayLike, info: InverseInfo, *, fill: float = 0.0) -> np.ndarray:
    """Bilinear inverse of the slicing for continuous maps.

    Args:
        maps: ``(N, S, S)`` float maps at model size (numpy or torch), one per kept slice.
        info: From the forward pass.
        fill: Value of slices that were not scored.

    Returns:
        ``(I, J, K)`` float32 in the source grid (same shape as the source volume).

    Raises:
        GeometryError: ``maps`` does not match ``info``.
    """
    slices = _to_display_size(maps, info, "bilinear").astype(np.float32)
    geo = info.geometry
    return geo.from_display(slices, info.canonical_index, fill, info.between).astype(np.float32, copy=False)


def masks_to_source(masks: ArrayLike, info: InverseInfo) -> np.ndarray:
    """Nearest-neighbour inverse for label masks: ``(N, S, S)`` -> ``(I, J, K)`` uint8 (0 elsewhere)."""
    slices = np.rint(_to_display_size(masks, info, "nearest")).astype(np.uint8)
    return info.geometry.from_display(slices, info.canonical_index, 0)
