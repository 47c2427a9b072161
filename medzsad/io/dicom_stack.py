"""Turn DICOM slices (files or frames) into one ordered, checked voxel grid.

Slices are sorted by their position along the slice normal (never by file name or InstanceNumber).
The stack is then checked for mixed image sizes, inconsistent orientation, duplicate positions,
missing slices, non-uniform spacing and gantry tilt, and each problem is handled per
:class:`~medzsad.io.dicom_common.GeometryPolicy` (gaps, i.e. missing slices and non-uniform
spacing, have a policy of their own: a cohort's ``pipeline.on_gap``). With ``warn`` the geometry
is the one SimpleITK's ImageSeriesReader gives: origin = first slice position, direction =
(row, col, row x col), slice spacing = ``|last - first| / (K - 1)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from medzsad.errors import DicomError
from medzsad.io.dicom_common import GeometryPolicy, LoadPolicy
from medzsad.io.geometry import (
    PositionReport,
    affine_lps_from_vectors,
    affine_ras_from_lps,
    analyze_positions,
    grid_problem,
    iop_vectors,
)

__all__ = ["SliceRecord", "StackResult", "stack_slices"]

log = logging.getLogger(__name__)


@dataclass
class SliceRecord:
    """One 2D slice of a series: a single-frame instance or one frame of a multi-frame object.

    Attributes:
        path: Source file (or archive member).
        position_lps: ``(3,)`` ImagePositionPatient.
        iop: ImageOrientationPatient (6 floats).
        pixel_spacing: PixelSpacing ``(row spacing, column spacing)`` in mm.
        shape: ``(rows, cols)``.
        pixels: Returns the ``(rows, cols)`` stored values of this slice.
        slope: RescaleSlope (1 when absent).
        intercept: RescaleIntercept (0 when absent).
        sop_uid: SOPInstanceUID.
        frame: 1-based frame number for a multi-frame object, 0 for a single-frame instance.
        instance_number: InstanceNumber (only breaks ties between equal positions).
        fallback_spacing_mm: SpacingBetweenSlices, else SliceThickness, else 1 (used for K = 1).
        derived: ImageType (0008,0008) says DERIVED (a copy kept only when no original exists).
        lossy: The pixels went through lossy compression (LossyImageCompression (0028,2110) or a
            lossy transfer syntax): a copy kept only when no lossless one exists.
        acquisition: EchoTime, EchoNumbers, TriggerTime, TemporalPositionIdentifier and
            AcquisitionNumber: two instances at one position with equal values are copies of one
            slice (e.g. an original and a lossy copy with a new SOPInstanceUID), different values
            are echoes, phases or repeated acquisitions.
    """

    path: str
    position_lps: np.ndarray
    iop: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    shape: tuple[int, int]
    pixels: Callable[[], np.ndarray]
    slope: float = 1.0
    intercept: float = 0.0
    sop_uid: str = ""
    frame: int = 0
    instance_number: int = 0
    fallback_spacing_mm: float = 1.0
    derived: bool = False
    lossy: bool = False
    acquisition: tuple[str, ...] = ()


@dataclass
class StackResult:
    """An ordered voxel grid.

    Attributes:
        data: ``(I, J, K)`` float32, rescaled (HU for CT).
        affine_ras: ``(4, 4)`` voxel -> RAS.
        positions_lps: ``(K, 3)`` LPS position of voxel ``(0, 0, k)`` as stored (or as resampled).
        records: The slice kept for each ``k`` (``None`` for an interpolated slice).
        warnings: Problems handled under the ``warn``/``resample`` policy.
    """

    data: np.ndarray
    affine_ras: np.ndarray
    positions_lps: np.ndarray
    records: list[SliceRecord | None]
    warnings: list[str] = field(default_factory=list)


def _problem(policy: LoadPolicy, where: str, message: str, warnings: list[str], gap: bool = False) -> None:
    if policy is LoadPolicy.ERROR and gap:
        raise DicomError(
            f"{where}: {message}; gaps are refused (gap policy 'error'; in a cohort pipeline.on_gap: "
            "fail): use 'warn' or 'resample' to accept them"
        )
    if policy is LoadPolicy.ERROR:
        raise DicomError(f"{where}: {message}; load with policy 'warn' or 'resample' to accept it")
    log.warning("%s", message)
    warnings.append(message)


def _consistent_group(records: list[SliceRecord], policy: LoadPolicy, where: str, warnings: list[str]):
    def key(r: SliceRecord) -> tuple:
        return (r.shape, tuple(np.round(r.iop, 4)), tuple(np.round(r.pixel_spacing, 4)))

    groups: dict[tuple, list[SliceRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    if len(groups) == 1:
        return records
    keys = list(groups)
    shapes = {k[0] for k in keys}
    orients = {k[1] for k in keys}
    what = []
    if len(shapes) > 1:
        what.append(f"mixed image sizes {sorted(shapes)} (Rows x Columns)")
    if len(orients) > 1:
        what.append(
            f"inconsistent orientation ({len(orients)} different ImageOrientationPatient (0020,0037))"
        )
    if len({k[2] for k in keys}) > 1:
        what.append("mixed PixelSpacing (0028,0030)")
    best = max(keys, key=lambda k: len(groups[k]))
    dropped = len(records) - len(groups[best])
    _problem(
        policy,
        where,
        f"{' and '.join(what)}; kept the largest consistent group of {len(groups[best])} slices, "
        f"dropped {dropped}",
        warnings,
    )
    return groups[best]


def _keep_order(r: SliceRecord) -> tuple:
    """Sort key of the slices at one position; the first is kept.

    Original before derived, lossless before lossy, then the lowest InstanceNumber and frame, then
    the SOPInstanceUID and file name (these only order identical copies).
    """
    return (r.derived, r.lossy, r.instance_number, r.frame, r.sop_uid, r.path)


def _copies(a: SliceRecord, b: SliceRecord) -> bool:
    """Two slices at one position are copies: one instance and frame, or instances of one acquisition."""
    if a.sop_uid == b.sop_uid and a.sop_uid:
        return a.frame == b.frame
    return a.acquisition == b.acquisition


def _drop_duplicates(
    ordered: list[SliceRecord], d: np.ndarray, policy: LoadPolicy, where: str, warnings: list[str]
) -> list[SliceRecord]:
    """One slice per position (positions closer than 1 µm along the normal are one position).

    Copies of one slice (one instance and frame exported twice, or a lossy or derived copy with a
    new SOPInstanceUID and the same acquisition attributes) are duplicates: the original,
    losslessly stored copy is kept whatever the file names, and they are reported as duplicates
    under every policy. Different slices at one position (echoes, phases, repeated acquisitions)
    are a geometry problem handled per ``policy``.
    """
    groups: list[list[int]] = [[0]] if ordered else []
    for n in range(1, len(ordered)):
        if abs(d[n] - d[groups[-1][0]]) < 1e-3:
            groups[-1].append(n)
        else:
            groups.append([n])
    if len(groups) == len(ordered):
        return ordered
    kept, copies, others, worse = [], 0, 0, 0
    for g in groups:
        best = min((ordered[n] for n in g), key=_keep_order)
        kept.append(best)
        for n in g:
            r = ordered[n]
            if r is best:
                continue
            if _copies(r, best):
                copies += 1
                worse += (r.derived, r.lossy) > (best.derived, best.lossy)
            else:
                others += 1
    if copies:
        noun = "copy" if copies == 1 else "copies"
        note = (
            f"{copies} duplicate {noun} of slices (the same instance, or a copy of it at the same position)"
        )
        detail = f"; {worse} lossy or derived" if worse else ""
        message = f"{note}{detail}; kept one copy of each, the original losslessly stored one"
        log.warning("%s", message)
        warnings.append(message)
    if others:
        _problem(
            policy,
            where,
            f"{others} slice(s) share a position with another instance "
            "(ImagePositionPatient (0020,0032)): several echoes, phases or acquisitions in one series; "
            "kept one per position (original, lossless, lowest InstanceNumber)",
            warnings,
        )
    return kept


def _read_pixels(ordered: list[SliceRecord]) -> np.ndarray:
    """``(K, rows, cols)`` float32 of ``stored * slope + intercept`` (computed in float64)."""
    out = np.empty((len(ordered), *ordered[0].shape), dtype=np.float32)
    for k, r in enumerate(ordered):
        arr = np.asarray(r.pixels())
        if r.slope != 1.0 or r.intercept != 0.0:
            arr = arr.astype(np.float64) * r.slope + r.intercept
        out[k] = arr
    return out


def _deshear(stack: np.ndarray, pos: np.ndarray, axes, spacing_ji: tuple[float, float], d: np.ndarray):
    """Shift each slice in-plane so that slice origins lie on the normal through the first one."""
    row, col, normal = axes
    nominal = pos[0] + np.outer(d - d[0], normal)
    for k in range(stack.shape[0]):
        off = pos[k] - nominal[k]
        di, dj = float(off @ row) / spacing_ji[1], float(off @ col) / spacing_ji[0]
        if abs(di) > 1e-6 or abs(dj) > 1e-6:
            stack[k] = ndimage.shift(stack[k], (dj, di), order=1, mode="nearest")
    return stack, nominal


def _resample_k(
    stack: np.ndarray, d: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray, list[int | None]]:
    """Linear interpolation along ``k`` onto ``d[0] + n * step``; returns (stack, targets, source index)."""
    n_out = int(round((d[-1] - d[0]) / step)) + 1
    targets = d[0] + np.arange(n_out) * step
    out = np.empty((n_out, *stack.shape[1:]), dtype=np.float32)
    src: list[int | None] = []
    for n, t in enumerate(targets):
        hi = int(np.clip(np.searchsorted(d, t), 1, len(d) - 1))
        lo = hi - 1
        w = float(np.clip((t - d[lo]) / (d[hi] - d[lo]), 0.0, 1.0))
        out[n] = (1.0 - w) * stack[lo] + w * stack[hi]
        exact = lo if abs(t - d[lo]) < 1e-3 else (hi if abs(t - d[hi]) < 1e-3 else None)
        src.append(exact)
    return out, targets, src


def _gap_issues(rep: PositionReport) -> list[str]:
    """Missing slices and non-uniform spacing, as the warnings and errors name them."""
    issues = []
    if rep.missing:
        issues.append(
            f"{rep.missing} missing slice(s): gap(s) of about {rep.missing + 1}x the median spacing "
            f"{rep.step_along_normal_mm:.4g} mm"
        )
    if rep.nonuniform and not rep.missing:
        issues.append(
            f"non-uniform slice spacing: gaps differ from the median {rep.step_along_normal_mm:.4g} mm "
            f"by up to {rep.max_gap_deviation_mm:.4g} mm"
        )
    return issues


def _check_grid(affine_lps: np.ndarray, k: int, where: str, first: str) -> None:
    """Refuse a grid that is not finite or singular, naming the tag it was computed from."""
    problem = grid_problem(affine_lps)
    if problem is None:
        return
    why, part = problem
    tag = {
        "origin": "ImagePositionPatient (0020,0032)",
        "i": "PixelSpacing (0028,0030)",
        "j": "PixelSpacing (0028,0030)",
        "k": "ImagePositionPatient (0020,0032) of the slices"
        if k > 1
        else "SpacingBetweenSlices (0018,0088) / SliceThickness (0018,0050)",
        "axes": "ImageOrientationPatient (0020,0037)",
    }[part]
    raise DicomError(
        f"{where}: {why}, from {tag} (e.g. in {first}); the value is corrupt, the series cannot be placed"
    )


def stack_slices(records: list[SliceRecord], policy: GeometryPolicy, where: str) -> StackResult:
    """Sort, check and stack slices into a voxel grid.

    Args:
        records: The slices of one series (any order).
        policy: What to do with geometry problems (gaps and the others).
        where: Series description for messages (SeriesInstanceUID or file).

    Raises:
        DicomError: No slices, an invalid ImageOrientationPatient, or a problem under ``error``.
    """
    if not records:
        raise DicomError(f"{where}: no image slices to load")
    warnings: list[str] = []
    records = _consistent_group(records, policy.other, where, warnings)
    try:
        row, col, normal = iop_vectors(records[0].iop)
    except ValueError as e:
        raise DicomError(f"{records[0].path}: invalid ImageOrientationPatient (0020,0037): {e}") from e
    d_all = np.array([float(r.position_lps @ normal) for r in records])
    order = sorted(
        range(len(records)), key=lambda n: (d_all[n], records[n].instance_number, records[n].frame)
    )
    ordered = [records[n] for n in order]
    ordered = _drop_duplicates(ordered, d_all[order], policy.other, where, warnings)
    pos = np.array([r.position_lps for r in ordered], dtype=np.float64)
    rep = analyze_positions(pos, normal)
    for issue in _gap_issues(rep):
        _problem(policy.gaps, where, issue, warnings, gap=True)
    if rep.tilted:
        tilt = f"gantry tilt: slices are sheared {rep.tilt_deg:.3g} degrees from the slice normal"
        _problem(policy.other, where, tilt, warnings)
    stack = _read_pixels(ordered)
    sy, sx = ordered[0].pixel_spacing
    kept: list[SliceRecord | None] = list(ordered)
    deshear = policy.other is LoadPolicy.RESAMPLE and rep.tilted
    regrid = policy.gaps is LoadPolicy.RESAMPLE and (rep.nonuniform or rep.missing)
    if len(ordered) == 1:
        step = ordered[0].fallback_spacing_mm
    elif deshear or regrid:
        d = rep.distances_mm
        if deshear:
            stack, pos = _deshear(stack, pos, (row, col, normal), (sy, sx), d)
        # regridded: the median spacing; de-sheared only: the mean spacing along the normal
        step = rep.step_along_normal_mm if regrid else float(d[-1] - d[0]) / (len(d) - 1)
        if regrid:
            stack, targets, src = _resample_k(stack, d, step)
            pos = pos[0] + np.outer(targets - d[0], normal)
            kept = [ordered[s] if s is not None else None for s in src]
        warnings.append(
            f"resampled onto a regular grid: {len(kept)} slices every {step:.4g} mm along the normal"
        )
    else:
        step = rep.mean_step_mm
    affine_lps = affine_lps_from_vectors(pos[0], (row, col, normal), (sx, sy, step))
    _check_grid(affine_lps, len(ordered), where, ordered[0].path)
    # (I, J, K) as a view of the (K, rows, columns) stack: Fortran order, the NIfTI voxel order,
    # and slice after slice in memory, as the axial display slices are read (no 300 MB transpose)
    data = stack.transpose(2, 1, 0)
    return StackResult(data, affine_ras_from_lps(affine_lps), pos, kept, warnings)
