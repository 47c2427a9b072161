"""2D slices along an anatomical axis, after reorienting the volume to the closest RAS orientation.

Reorientation only permutes and flips voxel axes (nibabel ``io_orientation`` logic, as
``as_closest_canonical``), so it is exact and exactly invertible; oblique volumes are sliced along
their closest anatomical axis. Slices are returned in radiological display orientation:

* axial: rows anterior -> posterior, columns patient right -> left;
* coronal: rows superior -> inferior, columns patient right -> left;
* sagittal: rows superior -> inferior, columns anterior -> posterior.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import nibabel.orientations as nio
import numpy as np
import numpy.typing as npt
import torch
from monai.transforms import Transform

from medzsad.errors import ConfigError, GeometryError
from medzsad.transforms._backend import ArrayLike

__all__ = [
    "AxisName",
    "CANONICAL_AXIS",
    "Reorientation",
    "SliceGeometry",
    "ExtractedSlices",
    "SliceExtractor",
]

AxisName = Literal["axial", "coronal", "sagittal"]
# RAS axis normal to each plane.
CANONICAL_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
_RAS = nio.axcodes2ornt(("R", "A", "S"))


def _ornt_view(arr: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """:func:`_apply_ornt` as a numpy view (flips and a transpose: no voxel is copied)."""
    flips = tuple(ax for ax, f in enumerate(ornt[:, 1]) if f == -1)
    perm = [int(p) for p in np.argsort(ornt[:, 0])]
    out = np.flip(arr, flips) if flips else arr
    return np.transpose(out, perm + list(range(3, out.ndim)))


def _apply_ornt(arr: ArrayLike, ornt: np.ndarray) -> ArrayLike:
    """Nibabel-style ``apply_orientation`` for numpy or torch (flip, then permute)."""
    flips = [ax for ax, f in enumerate(ornt[:, 1]) if f == -1]
    perm = [int(p) for p in np.argsort(ornt[:, 0])]
    if isinstance(arr, torch.Tensor):
        out = torch.flip(arr, flips) if flips else arr
        return out.permute(*perm, *range(3, out.ndim)).contiguous()
    out_np = np.flip(arr, tuple(flips)) if flips else arr
    return np.ascontiguousarray(np.transpose(out_np, perm + list(range(3, out_np.ndim))))


@dataclass(frozen=True)
class Reorientation:
    """Permutation/flip between a source grid and its closest RAS grid.

    Attributes:
        source_shape: ``(I, J, K)`` of the source.
        source_affine: ``(4, 4)`` voxel -> RAS of the source.
        to_canonical: nibabel orientation transform source -> canonical.
        from_canonical: nibabel orientation transform canonical -> source.
        canonical_shape: Shape after reorientation.
        canonical_affine: Voxel -> RAS of the canonical grid.
    """

    source_shape: tuple[int, int, int]
    source_affine: np.ndarray
    to_canonical: np.ndarray
    from_canonical: np.ndarray
    canonical_shape: tuple[int, int, int]
    canonical_affine: np.ndarray

    @classmethod
    def of(cls, affine_ras: np.ndarray, shape: tuple[int, ...]) -> Reorientation:
        """The reorientation of a grid with ``affine_ras`` and ``shape``.

        Raises:
            GeometryError: The affine is singular or not finite.
        """
        a = np.asarray(affine_ras, dtype=np.float64)
        if not np.all(np.isfinite(a)) or abs(np.linalg.det(a[:3, :3])) < 1e-12:
            raise GeometryError("volume affine is singular or not finite; cannot reorient")
        shape3 = tuple(int(s) for s in shape[:3])
        src = nio.io_orientation(a)
        to_c = nio.ornt_transform(src, _RAS)
        from_c = nio.ornt_transform(_RAS, src)
        c_shape = tuple(int(shape3[int(i)]) for i in np.argsort(to_c[:, 0]))
        c_affine = a @ nio.inv_ornt_aff(to_c, shape3)
        return cls(shape3, a, to_c, from_c, c_shape, c_affine)  # type: ignore[arg-type]

    def apply(self, arr: ArrayLike) -> ArrayLike:
        """Source-grid array ``(I, J, K, ...)`` -> canonical grid (numpy or torch)."""
        return _apply_ornt(arr, self.to_canonical)

    def invert(self, arr: ArrayLike) -> ArrayLike:
        """Canonical-grid array -> source grid (exact inverse of :meth:`apply`)."""
        return _apply_ornt(arr, self.from_canonical)

    def view(self, arr: np.ndarray) -> np.ndarray:
        """:meth:`apply` as a strided numpy view of ``arr`` (nothing copied)."""
        return _ornt_view(arr, self.to_canonical)


@dataclass(frozen=True)
class SliceGeometry:
    """Where each 2D slice came from (everything the inverse needs besides resizing).

    Attributes:
        reorientation: Source <-> canonical.
        axis: Plane name.
        canonical_axis: RAS axis the slices are cut along.
        source_axis: Source voxel axis the slices are cut along.
        source_flipped: True when canonical index ``t`` is source index ``n - 1 - t``.
        n_slices: Slices along the axis.
        display_shape: ``(H, W)`` of a slice.
        pixel_spacing_mm: ``(row spacing, column spacing)`` of a display slice.
    """

    reorientation: Reorientation
    axis: str
    canonical_axis: int
    source_axis: int
    source_flipped: bool
    n_slices: int
    display_shape: tuple[int, int]
    pixel_spacing_mm: tuple[float, float]

    def source_index(self, canonical_index: np.ndarray) -> np.ndarray:
        """Source voxel index along :attr:`source_axis` of canonical slice indices."""
        t = np.asarray(canonical_index, dtype=np.int64)
        return (self.n_slices - 1 - t) if self.source_flipped else t

    def to_display(self, canonical: ArrayLike) -> ArrayLike:
        """Canonical ``(X, Y, Z)`` -> ``(N, H, W)`` display slices along the axis."""
        c = self.canonical_axis
        if isinstance(canonical, torch.Tensor):
            moved = torch.movedim(canonical, c, 0).transpose(1, 2)
            return torch.flip(moved, (1, 2)).contiguous()
        return np.ascontiguousarray(self.display_view(canonical))

    def display_view(self, canonical: np.ndarray) -> np.ndarray:
        """:meth:`to_display` as a strided numpy view (nothing copied)."""
        return np.moveaxis(canonical, self.canonical_axis, 0).transpose(0, 2, 1)[:, ::-1, ::-1]

    def from_display(
        self,
        slices: np.ndarray,
        canonical_index: np.ndarray,
        fill: float = 0.0,
        between: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(N, H, W)`` display slices at ``canonical_index`` -> a source-grid ``(I, J, K)`` array.

        Slices not given are ``fill``, except those at ``between``: they are interpolated linearly
        along the axis from the nearest given slices on either side (strided scoring). Everything
        happens in the canonical grid, so the result does not depend on the source's voxel order.
        The dtype of ``slices`` is kept.

        Args:
            slices: ``(N, H, W)`` display slices.
            canonical_index: ``(N,)`` ascending canonical index of each slice.
            fill: Value of the slices neither given nor interpolated.
            between: Canonical indices inside ``[min, max]`` of ``canonical_index`` to interpolate.

        Raises:
            GeometryError: Slice shape or index out of range for this geometry.
        """
        s = np.asarray(slices)
        out, stack = self.source_canvas(s.dtype, fill)
        self.put_display(stack, s, canonical_index)
        self.interpolate_between(stack, canonical_index, between)
        return out

    def source_canvas(self, dtype: npt.DTypeLike, fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """A new source-grid ``(I, J, K)`` array of ``fill``, and its canonical slices as a view.

        The view is ``(n_slices, A, B)``: canonical slice ``t`` along this axis is ``view[t]``, so
        whatever :meth:`put_display` or an interpolation writes into it lands in the source-grid
        array, in the source's voxel order, with no reorientation copy afterwards.
        """
        out = np.full(self.reorientation.source_shape, fill, dtype=dtype)
        return out, np.moveaxis(self.reorientation.view(out), self.canonical_axis, 0)

    def put_display(self, stack: np.ndarray, slices: np.ndarray, canonical_index: np.ndarray) -> None:
        """Write ``(N, H, W)`` display slices into ``stack[canonical_index]`` (a :meth:`source_canvas` view).

        Raises:
            GeometryError: Slice shape or index out of range for this geometry.
        """
        idx = np.asarray(canonical_index, dtype=np.int64)
        if slices.ndim != 3 or slices.shape[1:] != self.display_shape or slices.shape[0] != idx.size:
            raise GeometryError(
                f"slices of shape {slices.shape} do not fit {idx.size} slices of {self.display_shape} "
                "of this volume"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_slices):
            raise GeometryError(f"slice index out of range 0..{self.n_slices - 1}")
        stack[idx] = slices[:, ::-1, ::-1].transpose(0, 2, 1)  # (N, A, B) canonical order

    @staticmethod
    def interpolate_between(
        stack: np.ndarray, canonical_index: np.ndarray, between: np.ndarray | None
    ) -> None:
        """Fill the slices ``between`` of a :meth:`source_canvas` view from the given ones (in place).

        ``canonical_index`` are the slices already written (ascending); see :func:`_interpolate_between`.
        """
        idx = np.asarray(canonical_index, dtype=np.int64)
        if between is not None and len(between) and idx.size:
            _interpolate_between(stack, idx, np.asarray(between, dtype=np.int64))


def _interpolate_between(stack: np.ndarray, given: np.ndarray, between: np.ndarray) -> None:
    """Fill ``stack[t]`` for ``t`` in ``between`` linearly from the nearest ``given`` slices (in place).

    ``given`` is ascending; a ``t`` outside its range takes the nearest end slice. One slice at a
    time, so no temporary is larger than a slice.
    """
    upper = np.clip(np.searchsorted(given, between), 0, given.size - 1)
    lower = np.clip(upper - 1, 0, given.size - 1)
    for t, lo, hi in zip(between.tolist(), given[lower].tolist(), given[upper].tolist()):
        if t <= lo or t >= hi:
            stack[t] = stack[lo if t <= lo else hi]
            continue
        w = np.float32((t - lo) / (hi - lo))
        np.multiply(stack[hi], w, out=stack[t])
        stack[t] += np.float32(1.0 - w) * stack[lo]


@dataclass(frozen=True)
class ExtractedSlices:
    """Display slices and their geometry.

    Attributes:
        slices: ``(N, H, W)`` in display orientation, same library and dtype as the input.
        geometry: :class:`SliceGeometry` for the inverse.
    """

    slices: ArrayLike
    geometry: SliceGeometry


class SliceExtractor(Transform):
    """Cut a volume into 2D display slices along ``axis`` after reorienting to closest RAS.

    Args:
        axis: ``axial``, ``coronal`` or ``sagittal``.

    Call with ``(data (I, J, K) numpy or torch, affine_ras (4, 4))``; returns :class:`ExtractedSlices`.
    """

    def __init__(self, axis: str = "axial") -> None:
        if axis not in CANONICAL_AXIS:
            raise ConfigError(f"slice axis must be one of {sorted(CANONICAL_AXIS)} (got {axis!r})")
        self.axis = axis

    def geometry(self, affine_ras: np.ndarray, shape: tuple[int, ...]) -> SliceGeometry:
        """The :class:`SliceGeometry` for a grid, without touching data."""
        ro = Reorientation.of(affine_ras, shape)
        c = CANONICAL_AXIS[self.axis]
        src_axis = int(np.flatnonzero(ro.to_canonical[:, 0] == c)[0])
        a, b = [x for x in range(3) if x != c]
        zooms = np.linalg.norm(ro.canonical_affine[:3, :3], axis=0)
        shape_c = ro.canonical_shape
        return SliceGeometry(
            ro,
            self.axis,
            c,
            src_axis,
            bool(ro.to_canonical[src_axis, 1] == -1),
            shape_c[c],
            (shape_c[b], shape_c[a]),
            (float(zooms[b]), float(zooms[a])),
        )

    def __call__(self, data: ArrayLike, affine_ras: np.ndarray) -> ExtractedSlices:  # type: ignore[override]
        """Extract all slices."""
        if data.ndim != 3:
            raise GeometryError(f"expected an (I, J, K) volume, got shape {tuple(data.shape)}")
        geo = self.geometry(affine_ras, tuple(data.shape))
        return ExtractedSlices(geo.to_display(geo.reorientation.apply(data)), geo)
