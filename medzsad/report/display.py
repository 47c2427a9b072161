"""Slices as screen images in radiological orientation, from any voxel order (the affine decides).

Patient left on the right of the screen, anterior (axial) or superior (coronal, sagittal) at the
top. Re-exported by :mod:`medzsad.report.overlay`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from medzsad.io.volume import LPS_TO_RAS

__all__ = [
    "DisplayOrientation",
    "display_orientation",
    "to_display",
    "from_display",
    "display_slice",
    "slice_normal",
    "display_point",
    "plane_axis",
    "pixel_aspect",
]

# Wanted LPS direction of screen columns (left -> right) and rows (top -> bottom) per slice axis
# orientation: axial (normal ~S), coronal (normal ~P), sagittal (normal ~L).
_SCREEN_LPS = {2: ((1, 0, 0), (0, 1, 0)), 1: ((1, 0, 0), (0, 0, -1)), 0: ((0, 1, 0), (0, 0, -1))}


def _lps_directions(affine_ras: np.ndarray) -> np.ndarray:
    """``(3, 3)``: column ``a`` is the LPS direction (times the spacing) of voxel axis ``a``."""
    return LPS_TO_RAS[:3, :3] @ np.asarray(affine_ras)[:3, :3]


class DisplayOrientation(NamedTuple):
    """How a slice (remaining voxel axes in order) becomes a screen image: transpose, then flips."""

    transpose: bool
    flip_rows: bool
    flip_cols: bool


def display_orientation(affine_ras: np.ndarray, axis: int) -> DisplayOrientation:
    """The radiological display orientation of slices cut along voxel ``axis``.

    Args:
        affine_ras: ``(4, 4)`` voxel -> RAS.
        axis: Slice axis (0, 1, 2).
    """
    in_plane = [a for a in range(3) if a != axis]
    lps = _lps_directions(affine_ras)[:, in_plane]  # (3, 2) direction of each in-plane voxel axis
    want_col, want_row = (np.array(v, dtype=float) for v in _SCREEN_LPS[slice_normal(affine_ras, axis)])
    col_ax = int(np.argmax(np.abs(want_col @ lps)))
    row_ax = 1 - col_ax
    return DisplayOrientation(
        transpose=col_ax == 0,
        flip_rows=bool(want_row @ lps[:, row_ax] < 0),
        flip_cols=bool(want_col @ lps[:, col_ax] < 0),
    )


def to_display(img: np.ndarray, o: DisplayOrientation) -> np.ndarray:
    """Apply a :class:`DisplayOrientation` to a 2D slice (or ``(..., a, b)`` stack)."""
    out = np.swapaxes(img, -1, -2) if o.transpose else img
    if o.flip_cols:
        out = out[..., :, ::-1]
    if o.flip_rows:
        out = out[..., ::-1, :]
    return np.ascontiguousarray(out)


def from_display(img: np.ndarray, o: DisplayOrientation) -> np.ndarray:
    """Undo :func:`to_display` (exact inverse)."""
    out = img[..., ::-1, :] if o.flip_rows else img
    if o.flip_cols:
        out = out[..., :, ::-1]
    if o.transpose:
        out = np.swapaxes(out, -1, -2)
    return np.ascontiguousarray(out)


def display_slice(volume: np.ndarray, affine_ras: np.ndarray, axis: int, index: int) -> np.ndarray:
    """One slice as a screen image ``(rows, cols)`` in radiological orientation.

    Args:
        volume: ``(I, J, K)`` array.
        affine_ras: ``(4, 4)`` voxel -> RAS.
        axis: Slice axis (0, 1, 2).
        index: Slice index along ``axis``.
    """
    if not -volume.shape[axis] <= index < volume.shape[axis]:
        raise IndexError(f"slice {index} out of range for axis {axis} of size {volume.shape[axis]}")
    plane = volume[(slice(None),) * axis + (index,)]  # a view: np.take copies the whole volume first
    return to_display(plane, display_orientation(affine_ras, axis))


def slice_normal(affine_ras: np.ndarray, axis: int) -> int:
    """LPS axis (0 sagittal, 1 coronal, 2 axial) closest to the normal of slices along ``axis``."""
    return int(np.argmax(np.abs(_lps_directions(affine_ras)[:, axis])))


def display_point(
    ijk: tuple[int, int, int], axis: int, shape: tuple[int, ...], o: DisplayOrientation
) -> tuple[int, int]:
    """Where voxel ``ijk`` lands (``(row, col)``) in :func:`display_slice` of its slice along ``axis``.

    Args:
        ijk: Voxel index.
        axis: Slice axis (0, 1, 2).
        shape: ``(I, J, K)`` of the volume.
        o: The display orientation of slices along ``axis``.
    """
    a, b = [x for x in range(3) if x != axis]
    row, col, rows, cols = ijk[a], ijk[b], shape[a], shape[b]
    if o.transpose:
        row, col, rows, cols = col, row, cols, rows
    if o.flip_cols:
        col = cols - 1 - col
    if o.flip_rows:
        row = rows - 1 - row
    return int(row), int(col)


def pixel_aspect(affine_ras: np.ndarray, axis: int, o: DisplayOrientation) -> float:
    """Height / width in mm of one screen pixel of slices along ``axis`` (for ``imshow(aspect=...)``)."""
    zooms = np.linalg.norm(np.asarray(affine_ras, dtype=np.float64)[:3, :3], axis=0)
    a, b = [x for x in range(3) if x != axis]
    row_axis, col_axis = (b, a) if o.transpose else (a, b)
    return float(zooms[row_axis] / max(zooms[col_axis], 1e-12))


def plane_axis(affine_ras: np.ndarray, lps_normal: int) -> int:
    """The voxel axis whose slices are closest to the plane with normal ``lps_normal`` (0 L, 1 P, 2 S)."""
    return int(np.argmax(np.abs(_lps_directions(affine_ras)[lps_normal, :])))
