"""Geometry helpers: DICOM orientation vectors, affines, orientation codes and slice-position checks.

Conventions (see :mod:`medzsad.io.volume`): ``i`` runs along a row (direction = the row cosine of
ImageOrientationPatient, step = PixelSpacing[1]), ``j`` down a column (column cosine, step =
PixelSpacing[0]), ``k`` over slices sorted by their position along the slice normal
``n = row x col`` (DICOM PS3.3 C.7.6.2.1.1). All positions are LPS millimetres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import nibabel.orientations as nio
import numpy as np

from medzsad.io.volume import LPS_TO_RAS

__all__ = [
    "Plane",
    "PositionReport",
    "iop_vectors",
    "plane_of_normal",
    "is_oblique",
    "affine_lps_from_vectors",
    "affine_ras_from_lps",
    "orientation_code",
    "analyze_positions",
    "grid_problem",
    "MIN_SPACING_MM",
    "MAX_SPACING_MM",
]

# Two positions closer than this along the normal are the same slice.
DUPLICATE_TOL_MM = 1e-3
# Relative deviation of a gap from the median gap above which spacing counts as non-uniform.
NONUNIFORM_REL_TOL = 0.01
# Angle between the slice step and the normal above which the stack counts as tilted.
TILT_TOL_DEG = 0.01
# A direction cosine above this is axis-aligned (not oblique).
OBLIQUE_COS = 0.9999
# Voxel spacings outside this range give a grid no writer or resampler can use (0.1 µm .. 100 m).
MIN_SPACING_MM = 1e-4
MAX_SPACING_MM = 1e5


class Plane(str, Enum):
    """Acquisition plane, named after the patient axis closest to the slice normal."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"
    UNKNOWN = "unknown"


def iop_vectors(iop: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row cosine, column cosine and slice normal from ImageOrientationPatient.

    Args:
        iop: The six values of ImageOrientationPatient (0020,0037).

    Returns:
        ``(row, col, normal)``, each a ``(3,)`` float64 unit vector in LPS. ``row`` and ``col``
        are normalised (files often store 6 decimals only) and ``normal = row x col``.

    Raises:
        ValueError: Not six numbers, a zero vector, or row and column cosines not orthogonal.
    """
    v = np.asarray([float(x) for x in iop], dtype=np.float64)  # type: ignore[attr-defined]
    if v.shape != (6,):
        raise ValueError(f"needs 6 values, found {v.size}")
    row, col = v[:3], v[3:]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if nr < 1e-6 or nc < 1e-6:
        raise ValueError("row or column cosine is a zero vector")
    row, col = row / nr, col / nc
    if abs(float(row @ col)) > 1e-3:
        raise ValueError(f"row and column cosines are not orthogonal (dot product {float(row @ col):.4g})")
    normal = np.cross(row, col)
    return row, col, normal / np.linalg.norm(normal)


def plane_of_normal(normal: np.ndarray) -> Plane:
    """The acquisition plane whose normal is closest to ``normal`` (LPS or RAS, sign ignored)."""
    n = np.abs(np.asarray(normal, dtype=np.float64))
    if not np.all(np.isfinite(n)) or n.max() == 0:
        return Plane.UNKNOWN
    return (Plane.SAGITTAL, Plane.CORONAL, Plane.AXIAL)[int(np.argmax(n))]


def is_oblique(row: np.ndarray, col: np.ndarray) -> bool:
    """True when the row or column cosine is not aligned with a patient axis."""
    return bool(np.abs(row).max() < OBLIQUE_COS or np.abs(col).max() < OBLIQUE_COS)


def affine_lps_from_vectors(
    origin_lps: np.ndarray,
    axes_lps: tuple[np.ndarray, np.ndarray, np.ndarray],
    spacing_ijk: tuple[float, ...],
) -> np.ndarray:
    """The ``(4, 4)`` voxel -> LPS affine from an origin, three unit axis vectors and spacings."""
    a = np.eye(4)
    for col, (vec, step) in enumerate(zip(axes_lps, spacing_ijk)):
        a[:3, col] = np.asarray(vec, dtype=np.float64) * float(step)
    a[:3, 3] = np.asarray(origin_lps, dtype=np.float64)
    return a


def affine_ras_from_lps(affine_lps: np.ndarray) -> np.ndarray:
    """Voxel -> RAS affine (nibabel convention) from a voxel -> LPS affine."""
    return LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)


def orientation_code(affine_ras: np.ndarray) -> str:
    """Three-letter code of the direction each voxel axis increases towards, e.g. ``"LPS"``.

    The nibabel convention: ``"RAS"`` means ``i`` increases to the patient's Right.
    """
    return "".join(str(c) for c in nio.aff2axcodes(np.asarray(affine_ras, dtype=np.float64)))


@dataclass(frozen=True)
class PositionReport:
    """What the slice positions of a stack say about its geometry.

    Attributes:
        distances_mm: ``(K,)`` position of each slice along the normal, ascending.
        mean_step_mm: ``|last - first| / (K - 1)`` (ITK's slice spacing), 0 for one slice.
        step_along_normal_mm: Median gap between neighbouring slices along the normal.
        max_gap_deviation_mm: Largest ``|gap - median gap|``.
        missing: Estimated number of missing slices (gaps that are integer multiples of the median).
        duplicates: Number of slices sharing a position with the previous one.
        tilt_deg: Angle between the first-to-last slice vector and the normal (gantry tilt).
    """

    distances_mm: np.ndarray
    mean_step_mm: float
    step_along_normal_mm: float
    max_gap_deviation_mm: float
    missing: int
    duplicates: int
    tilt_deg: float

    @property
    def nonuniform(self) -> bool:
        """True when some gap differs from the median gap by more than 1 % (plus 1 µm)."""
        tol = NONUNIFORM_REL_TOL * self.step_along_normal_mm + DUPLICATE_TOL_MM
        return self.max_gap_deviation_mm > tol

    @property
    def tilted(self) -> bool:
        """True when the slices are sheared along the normal (gantry tilt)."""
        return self.tilt_deg > TILT_TOL_DEG


def analyze_positions(positions_lps: np.ndarray, normal: np.ndarray) -> PositionReport:
    """Check a stack of slice positions that is already sorted along ``normal``.

    Args:
        positions_lps: ``(K, 3)`` float64 ImagePositionPatient of each slice, sorted ascending
            along ``normal``.
        normal: ``(3,)`` unit slice normal.

    Returns:
        The :class:`PositionReport`.
    """
    pos = np.asarray(positions_lps, dtype=np.float64)
    d = pos @ np.asarray(normal, dtype=np.float64)
    k = len(d)
    if k < 2:
        return PositionReport(d, 0.0, 0.0, 0.0, 0, 0, 0.0)
    span = pos[-1] - pos[0]
    mean_step = float(np.linalg.norm(span) / (k - 1))
    gaps = np.diff(d)
    dup = int(np.sum(gaps < DUPLICATE_TOL_MM))
    real = gaps[gaps >= DUPLICATE_TOL_MM]
    med = float(np.median(real)) if real.size else 0.0
    dev = float(np.max(np.abs(real - med))) if real.size else 0.0
    missing = 0
    if med > 0:
        ratios = real / med
        multiples = np.rint(ratios)
        is_multiple = (multiples >= 2) & (np.abs(ratios - multiples) < 0.1)
        missing = int(np.sum(multiples[is_multiple] - 1))
    norm_span = float(np.linalg.norm(span))
    tilt = 0.0
    if norm_span > 0:
        cosang = min(1.0, abs(float(span @ normal)) / norm_span)
        tilt = math.degrees(math.acos(cosang))
    return PositionReport(d, mean_step, med, dev, missing, dup, tilt)


def grid_problem(affine_lps: np.ndarray) -> tuple[str, str] | None:
    """Why a voxel -> LPS affine cannot be used, and the part at fault; ``None`` when it can.

    Every writer inverts the affine (heat maps, masks, DICOM SEG frames) and resampling divides by
    its spacings, so a grid whose numbers are not finite, whose spacings are outside
    ``[MIN_SPACING_MM, MAX_SPACING_MM]`` or whose axes are (nearly) parallel is refused.

    Returns:
        ``(why, part)`` with ``part`` one of ``origin``, ``i``, ``j``, ``k`` (a spacing) or
        ``axes`` (the direction), or ``None``.
    """
    a = np.asarray(affine_lps, dtype=np.float64)
    if not np.all(np.isfinite(a[:3, 3])):
        return "the grid origin is not finite", "origin"
    with np.errstate(all="ignore"):
        spacing = np.linalg.norm(a[:3, :3], axis=0)
    for axis, step in zip("ijk", spacing):
        if not MIN_SPACING_MM <= step <= MAX_SPACING_MM:  # also false for NaN and infinity
            return (
                f"the {axis} spacing is {step:.4g} mm (expected {MIN_SPACING_MM:g}..{MAX_SPACING_MM:g})",
                axis,
            )
    with np.errstate(all="ignore"):
        cond = np.linalg.cond(a[:3, :3] / spacing)
    if not np.isfinite(cond) or cond > 1e6:
        return "the voxel-to-patient affine is singular (its axes are parallel)", "axes"
    return None
