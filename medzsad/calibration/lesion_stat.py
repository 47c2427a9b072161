"""The lesion statistic of a heat map: the largest threshold at which a big-enough lesion survives.

For a heat map ``h`` and a minimum lesion volume ``v``, the statistic is

    ``L(h) = max{t : some 26-connected component of {h >= t} has volume >= v}``.

Components only grow as ``t`` falls, so a study gets at least one lesion with the mask rule of
:func:`medzsad.analysis.lesions.find_lesions` (``heat >= tau``, components under ``v`` removed)
exactly when ``L(h) >= tau``. Calibrating ``tau`` as a conformal quantile of ``L`` over normal
studies then bounds the chance that a normal study gets any lesion.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from medzsad.analysis.lesions import voxel_volume_ml

__all__ = ["min_lesion_voxels", "lesion_statistic", "lesion_statistic_affine"]

_STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)
#: Half of the 26 neighbour offsets (the other half are their negatives): each edge is found once.
_FORWARD_OFFSETS = np.array(
    [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) > (0, 0, 0)]
)


def min_lesion_voxels(voxel_ml: float, min_lesion_ml: float) -> int:
    """Fewest voxels a kept component has: the smallest ``c >= 1`` with ``c * voxel_ml >= min_lesion_ml``.

    The same comparison as :func:`medzsad.analysis.lesions.find_lesions` (``count * voxel_ml``).
    """
    if voxel_ml <= 0:
        raise ValueError(f"voxel volume must be positive (got {voxel_ml} mL)")
    c = max(int(np.ceil(min_lesion_ml / voxel_ml)), 1)
    while c > 1 and (c - 1) * voxel_ml >= min_lesion_ml:
        c -= 1
    while c * voxel_ml < min_lesion_ml:
        c += 1
    return c


def _largest_component_sparse(ids: np.ndarray, shape: tuple[int, int, int]) -> int:
    """Size of the largest 26-connected component of the voxels ``ids`` (flat indices into ``shape``).

    A graph over the given voxels only (13 forward neighbour offsets looked up by binary search),
    so the cost follows the number of voxels, not the size of the volume.
    """
    keys = np.sort(ids.astype(np.int64))
    n = keys.size
    coords = np.stack(np.unravel_index(keys, shape), axis=1)
    rows, cols = [], []
    for d in _FORWARD_OFFSETS:
        nb = coords + d
        ok = np.all((nb >= 0) & (nb < np.asarray(shape)), axis=1)
        nkeys = np.ravel_multi_index(tuple(nb[ok].T), shape)
        pos = np.searchsorted(keys, nkeys)
        hit = pos < n
        hit[hit] = keys[pos[hit]] == nkeys[hit]
        rows.append(np.nonzero(ok)[0][hit])
        cols.append(pos[hit])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return int(np.bincount(labels).max())


def _largest_component_dense(heat: np.ndarray, t: np.float32) -> int:
    comp, n = ndimage.label(heat >= t, structure=_STRUCTURE_26)
    return int(np.bincount(comp.ravel())[1:].max()) if n else 0


class _TopVoxels:
    """The ``k`` largest heat values (descending) and their voxels, grown on demand."""

    def __init__(self, heat: np.ndarray, k: int) -> None:
        self.heat = heat
        self.flat = heat.ravel()
        self.grow(k)

    def grow(self, k: int) -> None:
        size = self.flat.size
        self.k = min(size, k)
        ids = np.argpartition(self.flat, size - self.k)[size - self.k :] if self.k < size else np.arange(size)
        order = np.argsort(-self.flat[ids], kind="stable")
        self.ids = ids[order]
        self.values = self.flat[self.ids]
        self.neg = -self.values
        # candidates tied with the k-th value may have equal voxels outside the top k: not safe
        self.safe = size if self.k == size else int(np.searchsorted(self.neg, self.neg[-1], side="left"))

    def has_lesion(self, j: int, min_voxels: int) -> bool:
        """Whether ``{heat >= values[j]}`` has a component of at least ``min_voxels`` voxels."""
        end = int(np.searchsorted(self.neg, self.neg[j], side="right"))  # all voxels >= values[j]
        if end < min_voxels:
            return False
        if end * 8 > self.flat.size:  # most of the volume: one dense labelling is cheaper
            return _largest_component_dense(self.heat, self.values[j]) >= min_voxels
        return _largest_component_sparse(self.ids[:end], self.heat.shape) >= min_voxels  # type: ignore[arg-type]


def lesion_statistic(heat: np.ndarray, voxel_ml: float, min_lesion_ml: float) -> float:
    """``L(heat)``: the largest heat value ``t`` such that ``{heat >= t}`` keeps a lesion.

    The search is exact over the heat values: a galloping search down the sorted values (starting
    at the ``m``-th largest, ``m`` the minimum lesion size in voxels), then bisection. Only the top
    of the heat map is sorted and only its voxels are linked, so a normal study costs little.

    Args:
        heat: ``(I, J, K)`` float heat map in [0, 1] (compared in float32, as the mask writer does).
        voxel_ml: Volume of one voxel in mL.
        min_lesion_ml: Smallest lesion kept (mL).

    Returns:
        The statistic, a value of ``heat`` (float32-exact); ``0.0`` when the whole volume is smaller
        than ``min_lesion_ml`` (no threshold can then make a lesion).
    """
    h = np.ascontiguousarray(heat, dtype=np.float32)
    if h.ndim != 3:
        raise ValueError(f"heat map must be (I, J, K) (got shape {h.shape})")
    m = min_lesion_voxels(voxel_ml, min_lesion_ml)
    size = h.size
    if size < m:
        return 0.0
    top = _TopVoxels(h, max(8 * m, 4096))
    lo, hi = -1, m - 1  # no lesion at values[lo] (lo = -1: none tested); hi: next index to try
    while True:
        if hi >= top.safe:
            if top.k == size:  # the minimum value: the whole volume is one component of >= m voxels
                hi = size - 1
                break
            top.grow(4 * top.k)
            continue
        if top.has_lesion(hi, m):
            break
        lo, hi = hi, 2 * hi + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if top.has_lesion(mid, m):
            hi = mid
        else:
            lo = mid
    return float(top.values[hi])


def lesion_statistic_affine(heat: np.ndarray, affine_ras: np.ndarray, min_lesion_ml: float) -> float:
    """:func:`lesion_statistic` with the voxel volume taken from a ``(4, 4)`` voxel -> mm affine."""
    return lesion_statistic(heat, voxel_volume_ml(affine_ras), min_lesion_ml)
