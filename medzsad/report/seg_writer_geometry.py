"""Source DICOM frames of a Volume and the voxel each of their pixels shows.

A DICOM SEG or Parametric Map frame must match its source frame pixel for pixel. Rather than
trusting that the loader kept the source's row/column order, every pixel ``(r, c)`` of every source
frame is placed in patient space (DICOM C.7.6.2.1.1: ``IPP + c * dc * row_cos + r * dr * col_cos``)
and mapped through the inverse of the volume's LPS affine to the voxel ``(i, j, k)`` it shows. The
frame is then a gather from the ``(I, J, K)`` array, so any flip or permutation the loader applied is
undone exactly, and a source frame that does not lie on the voxel grid is an error, not a silent
resampling.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from medzsad.errors import DicomError, GeometryError
from medzsad.io.volume import Volume

__all__ = ["SourceFrame", "SourceImages", "load_source_images", "gather_frames", "GRID_TOL_VOXELS"]

logger = logging.getLogger(__name__)

#: Largest distance (in voxels) between a source pixel centre and the nearest voxel centre.
GRID_TOL_VOXELS = 0.1


@dataclass(frozen=True)
class SourceFrame:
    """Geometry of one source frame.

    Attributes:
        position_lps_mm: ``(3,)`` ImagePositionPatient (0020,0032): centre of pixel ``(0, 0)``.
        row_cos: ``(3,)`` direction of increasing column index (first half of IOP (0020,0037)).
        col_cos: ``(3,)`` direction of increasing row index (second half of IOP).
        spacing_mm: PixelSpacing (0028,0030): (between rows, between columns).
        rows: Rows (0028,0010).
        cols: Columns (0028,0011).
    """

    position_lps_mm: np.ndarray
    row_cos: np.ndarray
    col_cos: np.ndarray
    spacing_mm: tuple[float, float]
    rows: int
    cols: int


@dataclass(frozen=True)
class SourceImages:
    """The source instances as highdicom wants them, and one geometry entry per output frame.

    Attributes:
        datasets: Single-frame instances in volume slice order ``k``, or the one multi-frame object.
        frames: One entry per frame of the derived object: per dataset (single-frame sources) or
            per frame of the multi-frame source, in its frame order.
        multi_frame: True when ``datasets`` is a single multi-frame object.
    """

    datasets: list[Dataset]
    frames: list[SourceFrame]
    multi_frame: bool


def _floats(ds: Dataset, keyword: str, tag: str, path: str, n: int) -> np.ndarray:
    value = getattr(ds, keyword, None)
    if value is None or len(value) != n:
        raise DicomError(
            f"{path}: {keyword} {tag} is missing or has {0 if value is None else len(value)} values "
            f"(expected {n}); a DICOM SEG needs the source geometry"
        )
    return np.array([float(v) for v in value], dtype=np.float64)


def _frame(pos: np.ndarray, iop: np.ndarray, spacing: np.ndarray, ds: Dataset) -> SourceFrame:
    return SourceFrame(
        position_lps_mm=pos,
        row_cos=iop[:3],
        col_cos=iop[3:],
        spacing_mm=(float(spacing[0]), float(spacing[1])),
        rows=int(ds.Rows),
        cols=int(ds.Columns),
    )


def _single_frame(ds: Dataset, path: str) -> SourceFrame:
    pos = _floats(ds, "ImagePositionPatient", "(0020,0032)", path, 3)
    iop = _floats(ds, "ImageOrientationPatient", "(0020,0037)", path, 6)
    spacing = _floats(ds, "PixelSpacing", "(0028,0030)", path, 2)
    return _frame(pos, iop, spacing, ds)


def _group_item(ds: Dataset, f: int, seq: str, item: str, path: str) -> Dataset:
    """Functional group item ``seq`` for frame ``f`` (per-frame first, then shared)."""
    per, shared = ds.get("PerFrameFunctionalGroupsSequence"), ds.get("SharedFunctionalGroupsSequence")
    groups = ([per[f]] if per else []) + ([shared[0]] if shared else [])
    for group in groups:
        if seq in group:
            return group[seq][0]
    raise DicomError(
        f"{path}: frame {f + 1} has no {seq} with {item} in the per-frame or shared functional "
        "groups; a DICOM SEG needs the source geometry of every frame"
    )


def _multi_frames(ds: Dataset, path: str) -> list[SourceFrame]:
    frames = []
    for f in range(int(ds.NumberOfFrames)):
        pos_item = _group_item(ds, f, "PlanePositionSequence", "ImagePositionPatient", path)
        ori_item = _group_item(ds, f, "PlaneOrientationSequence", "ImageOrientationPatient", path)
        meas_item = _group_item(ds, f, "PixelMeasuresSequence", "PixelSpacing", path)
        pos = _floats(pos_item, "ImagePositionPatient", "(0020,0032)", path, 3)
        iop = _floats(ori_item, "ImageOrientationPatient", "(0020,0037)", path, 6)
        spacing = _floats(meas_item, "PixelSpacing", "(0028,0030)", path, 2)
        frames.append(_frame(pos, iop, spacing, ds))
    return frames


def _read(path: str) -> Dataset:
    # through medzsad.io: archive members (``x.zip!/member``), limits and typed errors
    from medzsad.io.dicom_common import read_dataset

    return read_dataset(path, header_only=False)


def load_source_images(volume: Volume) -> SourceImages:
    """Read the source instances of a DICOM-sourced volume.

    Raises:
        DicomError: The volume is not from DICOM, a file is unreadable or lacks geometry, or a
            file's SOPInstanceUID (0008,0018) differs from the one recorded at load time.
    """
    src = volume.source
    if src.kind != "dicom" or not src.paths:
        raise DicomError(
            f"{src.paths[0] if src.paths else '<no path>'}: source kind is {src.kind!r}, expected "
            "'dicom'; DICOM SEG and Parametric Maps are written only for DICOM-sourced studies"
        )
    unique = list(dict.fromkeys(src.paths))
    datasets = [_read(p) for p in unique]
    for p, ds, uid in zip(unique, datasets, dict.fromkeys(src.sop_instance_uids) or [None] * len(unique)):
        if uid is not None and str(ds.SOPInstanceUID) != uid:
            raise DicomError(
                f"{p}: SOPInstanceUID (0008,0018) is {ds.SOPInstanceUID}, expected {uid} as at load "
                "time; the source folder changed since the run, re-run the study"
            )
    if len(datasets) == 1 and int(datasets[0].get("NumberOfFrames", 1) or 1) > 1:
        return SourceImages(datasets, _multi_frames(datasets[0], unique[0]), multi_frame=True)
    if len(datasets) != len(src.paths):
        raise DicomError(
            f"{unique[0]}: {len(src.paths)} slices but {len(datasets)} distinct files; several "
            "multi-frame objects in one volume are not supported for DICOM SEG"
        )
    frames = [_single_frame(ds, p) for ds, p in zip(datasets, unique)]
    return SourceImages(datasets, frames, multi_frame=False)


def _frame_voxels(frame: SourceFrame, inv_lps: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``(rows, cols, 3)`` int voxel index shown by each pixel of ``frame``.

    Raises:
        GeometryError: A pixel centre is off the voxel grid or outside the volume.
    """
    r, c = np.mgrid[0 : frame.rows, 0 : frame.cols]
    dr, dc = frame.spacing_mm
    pts = frame.position_lps_mm + (c[..., None] * dc) * frame.row_cos + (r[..., None] * dr) * frame.col_cos
    ijk = pts @ inv_lps[:3, :3].T + inv_lps[:3, 3]
    idx = np.rint(ijk)
    off = float(np.abs(ijk - idx).max())
    if off > GRID_TOL_VOXELS:
        raise GeometryError(
            f"source frame at IPP {frame.position_lps_mm.round(3).tolist()} lies {off:.3f} voxels off "
            f"the volume grid (tolerance {GRID_TOL_VOXELS}); the mask cannot be stored frame by frame"
        )
    lo, hi = idx.min(axis=(0, 1)), idx.max(axis=(0, 1))
    if (lo < 0).any() or (hi >= np.array(shape)).any():
        raise GeometryError(
            f"source frame at IPP {frame.position_lps_mm.round(3).tolist()} maps to voxels "
            f"{lo.astype(int).tolist()}..{hi.astype(int).tolist()}, outside the volume {list(shape)}"
        )
    return idx.astype(np.intp)


def gather_frames(array_ijk: np.ndarray, affine_lps: np.ndarray, frames: list[SourceFrame]) -> np.ndarray:
    """Resample a volume-space array onto the source frames, exactly (nearest voxel, on-grid only).

    Args:
        array_ijk: ``(I, J, K)`` array in the volume's voxel order (any dtype).
        affine_lps: ``(4, 4)`` voxel -> LPS mm of the volume.
        frames: Source frame geometries, one per output frame.

    Returns:
        ``(F, rows, cols)`` array of ``array_ijk``'s dtype; ``out[f, r, c]`` is the voxel shown by
        pixel ``(r, c)`` of source frame ``f``.

    Raises:
        GeometryError: The affine is singular, or a frame is off the grid or outside the volume.
    """
    try:
        inv = np.linalg.inv(affine_lps)
    except np.linalg.LinAlgError as e:
        raise GeometryError(f"volume affine is singular:\n{affine_lps}") from e
    shape = tuple(int(n) for n in array_ijk.shape[:3])
    out = []
    for frame in frames:
        view = _frame_view(array_ijk, frame, inv, shape)  # type: ignore[arg-type]
        if view is None:  # oblique to the grid: pixel by pixel
            idx = _frame_voxels(frame, inv, shape)  # type: ignore[arg-type]
            view = array_ijk[idx[..., 0], idx[..., 1], idx[..., 2]]
        out.append(view)
    return np.stack(out, axis=0)


def _axis_slice(start: int, step: int, n: int) -> slice:
    stop = start + n * step
    return slice(start, stop if stop >= 0 else None, step)


def _frame_view(
    array_ijk: np.ndarray, frame: SourceFrame, inv_lps: np.ndarray, shape: tuple[int, int, int]
) -> np.ndarray | None:
    """The frame as a strided view of ``array_ijk`` when its rows and columns step along voxel axes.

    Pixel ``(r, c)`` shows voxel ``a + r u + c v`` (``a``, ``u``, ``v`` in voxel units). When ``u``
    and ``v`` are, within the grid tolerance, steps of +-1 along two different voxel axes and ``a``
    is a voxel, that is the same voxel :func:`_frame_voxels` finds for every pixel (the summed
    deviation over the whole frame is below :data:`GRID_TOL_VOXELS`, far from a rounding tie), and
    the frame is a slice of the array. ``None`` otherwise (oblique or scaled frames).

    Raises:
        GeometryError: The frame maps outside the volume.
    """
    m, t = inv_lps[:3, :3], inv_lps[:3, 3]
    dr, dc = frame.spacing_mm
    a = m @ frame.position_lps_mm + t
    u = m @ (np.asarray(frame.col_cos, dtype=np.float64) * dr)  # one row down
    v = m @ (np.asarray(frame.row_cos, dtype=np.float64) * dc)  # one column right
    ai, ui, vi = np.rint(a), np.rint(u), np.rint(v)
    bound = np.abs(a - ai) + (frame.rows - 1) * np.abs(u - ui) + (frame.cols - 1) * np.abs(v - vi)
    unit_u, unit_v = (
        np.abs(ui).sum() == 1 and np.abs(ui).max() == 1,
        np.abs(vi).sum() == 1 and np.abs(vi).max() == 1,
    )
    if float(bound.max()) > GRID_TOL_VOXELS / 2 or not (unit_u and unit_v):
        return None
    p, q = int(np.argmax(np.abs(ui))), int(np.argmax(np.abs(vi)))
    if p == q:
        return None
    corners = [ai + r * ui + c * vi for r in (0, frame.rows - 1) for c in (0, frame.cols - 1)]
    lo, hi = np.min(corners, axis=0), np.max(corners, axis=0)
    if (lo < 0).any() or (hi >= np.array(shape)).any():
        raise GeometryError(
            f"source frame at IPP {frame.position_lps_mm.round(3).tolist()} maps to voxels "
            f"{lo.astype(int).tolist()}..{hi.astype(int).tolist()}, outside the volume {list(shape)}"
        )
    index: list[int | slice] = [int(x) for x in ai]
    index[p] = _axis_slice(int(ai[p]), int(ui[p]), frame.rows)
    index[q] = _axis_slice(int(ai[q]), int(vi[q]), frame.cols)
    view = array_ijk[tuple(index)]  # axes (p, q) in increasing order
    return view if p < q else view.T
