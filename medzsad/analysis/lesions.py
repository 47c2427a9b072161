"""Heat map -> mask: threshold, 3D connected components, minimum lesion volume, lesion statistics.

The maths only; :mod:`medzsad.report.lesions` writes the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medzsad.io.volume import LPS_TO_RAS

__all__ = [
    "clamp_heat",
    "top_volume_mean",
    "Lesion",
    "LesionResult",
    "voxel_volume_ml",
    "threshold_value",
    "find_lesions",
]


def clamp_heat(heat: np.ndarray) -> np.ndarray:
    """``heat`` (float, edited in place) brought into [0, 1]: NaN and values below 0 -> 0, above 1 -> 1.

    ``nan_to_num`` then ``clip``, without ``nan_to_num``'s whole-volume masks (``fmax`` ignores NaN).
    """
    np.fmax(heat, heat.dtype.type(0.0), out=heat)
    return np.minimum(heat, heat.dtype.type(1.0), out=heat)


#: 26-connectivity: voxels touching by a face, an edge or a corner belong to one lesion.
_STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class Lesion:
    """One connected component of the thresholded heat map.

    Attributes:
        label: Value of this lesion in the mask (1..255, by decreasing max score).
        voxels: Number of voxels.
        volume_ml: Volume in millilitres (voxels x voxel volume).
        centroid_ras_mm: Centre of mass (unweighted) in scanner RAS mm.
        centroid_lps_mm: The same point in LPS mm (DICOM patient coordinates).
        bbox_min_ijk: First voxel index of the bounding box along ``i, j, k``.
        bbox_max_ijk: Last voxel index (inclusive).
        max_score: Highest heat in the lesion, in [0, 1].
        mean_score: Mean heat in the lesion.
    """

    label: int
    voxels: int
    volume_ml: float
    centroid_ras_mm: tuple[float, float, float]
    centroid_lps_mm: tuple[float, float, float]
    bbox_min_ijk: tuple[int, int, int]
    bbox_max_ijk: tuple[int, int, int]
    max_score: float
    mean_score: float


@dataclass(frozen=True)
class LesionResult:
    """The label map and its lesions.

    Attributes:
        labels: ``(I, J, K)`` uint8, 0 background, lesion ``n`` has value ``n`` (at most 255 kept).
        lesions: Lesions, strongest first.
        threshold: Heat value used (``heat >= threshold`` is foreground).
        n_dropped_small: Components removed for being under the minimum volume.
    """

    labels: np.ndarray
    lesions: tuple[Lesion, ...]
    threshold: float
    n_dropped_small: int


def voxel_volume_ml(affine_ras: np.ndarray) -> float:
    """Volume of one voxel in mL: ``|det(affine[:3, :3])|`` mm³ / 1000."""
    return float(abs(np.linalg.det(np.asarray(affine_ras)[:3, :3]))) / 1000.0


def top_volume_mean(heat: np.ndarray, region: np.ndarray | None, voxel_ml: float, volume_ml: float) -> float:
    """Mean heat of the hottest ``volume_ml`` of ``region`` (at least one voxel; all when smaller).

    A count of voxels from a volume in mL, so the statistic covers the same tissue volume whatever
    the slice thickness.

    Args:
        heat: ``(I, J, K)`` heat map.
        region: ``(I, J, K)`` bool voxels to rank (``None``: the whole grid).
        voxel_ml: Volume of one voxel in mL.
        volume_ml: The hot volume in mL.
    """
    values = heat[region] if region is not None else heat.reshape(-1)
    if values.size == 0:
        return 0.0
    n = int(min(values.size, max(1, round(volume_ml / max(voxel_ml, 1e-12)))))
    top = np.partition(values, values.size - n)[values.size - n :]
    return float(np.mean(top, dtype=np.float64))


def threshold_value(heat: np.ndarray, method: str, value: float, body: np.ndarray | None = None) -> float:
    """The heat threshold of a rule.

    Args:
        heat: ``(I, J, K)`` float heat map in [0, 1].
        method: ``"fixed"`` (``value`` is the threshold) or ``"percentile"`` (``value``-th percentile
            of the heat inside ``body``, or of all voxels when no body mask is given).
        value: Threshold or percentile in (0, 100).
        body: Optional boolean ``(I, J, K)`` mask of scanned (non-empty) voxels.
    """
    if method == "fixed":
        return float(value)
    if method == "percentile":
        if body is not None and body.any():  # a new array: the percentile may reorder it in place
            vals, own = heat[body], True
        else:
            vals, own = heat.ravel(), False
        return float(np.percentile(vals, value, overwrite_input=own)) if vals.size else float("inf")
    raise ValueError(f"unknown threshold method {method!r}; use fixed or percentile")


def find_lesions(
    heat: np.ndarray, affine_ras: np.ndarray, threshold: float, min_volume_ml: float
) -> LesionResult:
    """Threshold ``heat``, label 3D components (26-connectivity), drop small ones, measure the rest.

    Args:
        heat: ``(I, J, K)`` float heat map in [0, 1], in the source voxel grid.
        affine_ras: ``(4, 4)`` voxel -> RAS mm of that grid.
        threshold: Foreground is ``heat >= threshold``.
        min_volume_ml: Components smaller than this (mL) are dropped.
    """
    heat = np.ascontiguousarray(heat, dtype=np.float32)  # labelling and masks are slower on other layouts
    foreground = heat >= threshold
    comp, n = ndimage.label(foreground, structure=_STRUCTURE_26)
    vox_ml = voxel_volume_ml(affine_ras)
    if not n:
        return LesionResult(np.zeros(heat.shape, dtype=np.uint8), (), float(threshold), 0)
    # every statistic is taken on the foreground voxels only, grouped by component: the cost
    # follows the lesions' size, not the scan's (scipy's labelled maximum sorts the whole volume)
    flat = np.flatnonzero(foreground)  # scan order; heat and comp are C-contiguous: reshape is a view
    del foreground
    comp_fg = comp.reshape(-1)[flat]
    del comp  # the whole volume's int32 labels: only the foreground's are used from here on
    heat_fg = heat.reshape(-1)[flat]
    order = np.argsort(comp_fg, kind="stable")  # stable: each component's voxels stay in scan order
    counts = np.bincount(comp_fg, minlength=n + 1)
    ends = np.cumsum(counts)
    maxes = np.full(n + 1, -np.inf, dtype=np.float32)
    np.maximum.at(maxes, comp_fg, heat_fg)
    found = [(float(maxes[c]), c) for c in range(1, n + 1) if counts[c] * vox_ml >= min_volume_ml]
    dropped = n - len(found)
    # strongest first; ties broken by the component's scan order, so the result is deterministic
    found.sort(key=lambda t: (-t[0], t[1]))
    relabel = np.zeros(n + 1, dtype=np.uint8)
    lesions = []
    for new_label, (_, c) in enumerate(found[:255], start=1):
        members = order[ends[c] - counts[c] : ends[c]]
        lesions.append(_measure(heat_fg[members], flat[members], heat.shape, new_label, affine_ras, vox_ml))
        relabel[c] = new_label
    del order, heat_fg
    labels = np.zeros(heat.shape, dtype=np.uint8)
    labels.reshape(-1)[flat] = relabel[comp_fg]
    return LesionResult(labels, tuple(lesions), float(threshold), dropped)


def _measure(
    values: np.ndarray,
    flat_index: np.ndarray,
    shape: tuple[int, ...],
    label: int,
    affine_ras: np.ndarray,
    vox_ml: float,
) -> Lesion:
    """One lesion from its voxels' heat values and flat indices (in scan order).

    The voxel coordinates are taken one axis at a time: a lesion of ``n`` voxels then needs two
    ``(n,)`` integer arrays at once, not six (an 11-million-voxel lesion: 0.2 GB, not 0.5 GB).
    The centroid is the same to the bit: the coordinate sums are integers, exact in float64.
    """
    strides = [int(np.prod(shape[d + 1 :], dtype=np.int64)) for d in range(len(shape))]  # C order
    centroid, lo, hi = zip(*(_axis_stats(flat_index, s, n) for s, n in zip(strides, shape)))
    ras = (np.asarray(affine_ras) @ np.append(np.asarray(centroid), 1.0))[:3]
    lps = (LPS_TO_RAS[:3, :3] @ ras).tolist()
    return Lesion(
        label=label,
        voxels=int(values.size),
        volume_ml=float(values.size * vox_ml),
        centroid_ras_mm=(float(ras[0]), float(ras[1]), float(ras[2])),
        centroid_lps_mm=(float(lps[0]), float(lps[1]), float(lps[2])),
        bbox_min_ijk=lo,
        bbox_max_ijk=hi,
        max_score=float(values.max()),
        mean_score=float(values.mean()),
    )


def _axis_stats(flat_index: np.ndarray, stride: int, size: int) -> tuple[float, int, int]:
    """Mean, min and max of one axis's voxel coordinate (its one array is freed on return)."""
    c = np.floor_divide(flat_index, stride)
    np.remainder(c, size, out=c)
    return float(c.mean()), int(c.min()), int(c.max())
