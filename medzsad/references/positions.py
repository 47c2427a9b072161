"""Normalised body coordinate of slices along the slice axis (for level-matched references)."""

from __future__ import annotations

import numpy as np

from medzsad.errors import GeometryError

__all__ = ["body_coordinates"]


def body_coordinates(affine_ras: np.ndarray, axis: int, slice_index: np.ndarray) -> np.ndarray:
    """Position of each scored slice in the body extent, ``0`` at one end and ``1`` at the other.

    The slice's world position is taken along the RAS axis that the slice axis mostly follows
    (superior for axial slices, whatever the voxel order), so that two scans of the same anatomy
    get the same coordinate at the same level even if one is stored feet-first. The extent is that
    of the scored (non-empty) slices.

    Args:
        affine_ras: ``(4, 4)`` voxel -> RAS mm.
        axis: Voxel axis the slices are cut along (0, 1, 2).
        slice_index: ``(N,)`` int, source index of each scored slice along ``axis``.

    Returns:
        ``(N,)`` float32 in [0, 1] (all ``0.5`` for a single slice).

    Raises:
        GeometryError: A degenerate affine column for ``axis``.
    """
    step = np.asarray(affine_ras, dtype=np.float64)[:3, axis]
    world_axis = int(np.argmax(np.abs(step)))
    if not np.isfinite(step[world_axis]) or step[world_axis] == 0:
        raise GeometryError(f"degenerate affine: voxel axis {axis} has zero length")
    # slices are evenly spaced along the axis, so the coordinate is the signed index rescaled:
    # integer arithmetic up to one division, hence bit-identical for any voxel order of the scan
    level = np.asarray(slice_index, dtype=np.int64) * (1 if step[world_axis] > 0 else -1)
    if level.size == 0:
        return np.zeros(0, dtype=np.float32)
    lo, hi = int(level.min()), int(level.max())
    if hi == lo:
        return np.full(level.shape, 0.5, dtype=np.float32)
    return ((level - lo) / (hi - lo)).astype(np.float32)
