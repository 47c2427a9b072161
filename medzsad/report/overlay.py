"""overlay.png: the highest-scoring slices, and orthogonal views through the top lesions, with heat.

The main rows show the highest-scoring slices of the primary axis in slice-position order (inferior
to superior for axial slices). Below them, one row per top lesion (or, without lesions, through
the hottest voxel): axial, coronal and sagittal planes through its peak with a crosshair on it,
the way a radiologist checks a finding in three planes. A volume one voxel thick along an axis (a
radiograph, a single-frame DICOM, a 2D NIfTI) has no orthogonal view: the planes across that axis
would be lines, so its figure is the in-plane slices alone, with heat and outlines as for a volume.

Drawn by radiology conventions: slices in radiological orientation (patient left on the right of
the screen, anterior or superior at the top), derived from the affine, so any source orientation
displays the same way; orientation letters (R/L, A/P, S/I) on the panel edges; the slice position
in mm (RAS) under each panel; heat only where it is at or above a floor (the scan shows through
elsewhere); lesion outlines and, when the manifest has a ground-truth mask, its outlines in a
second colour; a colour bar that says what the number means.

Uses matplotlib's object API with the Agg canvas: no ``matplotlib.use``, no pyplot state.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from medzsad.analysis.lesions import Lesion
from medzsad.report.display import (
    DisplayOrientation,
    display_orientation,
    display_point,
    display_slice,
    from_display,
    pixel_aspect,
    plane_axis,
    slice_normal,
    to_display,
)

__all__ = [
    "OverlaySpec",
    "OrthoPoint",
    "ortho_points",
    "ORTHO_LESIONS",
    "DisplayOrientation",
    "display_orientation",
    "to_display",
    "from_display",
    "display_slice",
    "render_overlay",
    "LESION_COLOUR",
    "TRUTH_COLOUR",
    "HEAT_FLOOR",
    "slice_position_text",
    "slice_level",
]

#: Default heat floor: heat below it is transparent (the runner lowers it to the mask threshold).
HEAT_FLOOR = 0.25
#: Outline colours: detected lesions (cyan) and ground truth (green, dashed): apart from the heat map.
LESION_COLOUR = "#00e5ff"
TRUTH_COLOUR = "#39ff14"
# Orientation letters (left, right, top, bottom of the screen) per slice normal (LPS axis 0/1/2).
_EDGE_LETTERS = {2: ("R", "L", "A", "P"), 1: ("R", "L", "S", "I"), 0: ("A", "P", "S", "I")}
# RAS axis and its (positive, negative) letters of the slice position per slice normal.
_POSITION = {2: (2, "S", "I"), 1: (1, "A", "P"), 0: (0, "R", "L")}
#: Top lesions given an orthogonal view.
ORTHO_LESIONS = 3
_CROSSHAIR = "#ffe600"
# the three planes of an orthogonal view: name and LPS normal axis
_PLANES = (("axial", 2), ("coronal", 1), ("sagittal", 0))


@dataclass(frozen=True)
class OrthoPoint:
    """A point shown in three orthogonal planes: a voxel index and what it is."""

    ijk: tuple[int, int, int]
    label: str


def ortho_points(
    heat: np.ndarray, labels: np.ndarray, lesions: tuple[Lesion, ...], n: int
) -> tuple[OrthoPoint, ...]:
    """The peak voxel of each of the first ``n`` lesions (strongest first), or the hottest voxel.

    Args:
        heat: ``(I, J, K)`` heat map.
        labels: ``(I, J, K)`` label map (lesion ``k`` has value ``lesions[k-1].label``).
        lesions: The lesions, strongest first.
        n: How many lesions.
    """
    out = []
    for les in lesions[:n]:
        lo, hi = les.bbox_min_ijk, les.bbox_max_ijk
        box = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
        inside = np.where(labels[box] == les.label, heat[box], -np.inf)
        peak = np.unravel_index(int(np.argmax(inside)), inside.shape)
        at = (int(peak[0] + lo[0]), int(peak[1] + lo[1]), int(peak[2] + lo[2]))
        out.append(OrthoPoint(at, f"lesion {les.label} peak {les.max_score:.3f}"))
    if not out and heat.size:
        hot = np.unravel_index(int(np.argmax(heat)), heat.shape)
        at = (int(hot[0]), int(hot[1]), int(hot[2]))
        out.append(OrthoPoint(at, f"hottest voxel {float(heat[at]):.3f} (no lesion)"))
    return tuple(out)


@dataclass(frozen=True)
class OverlaySpec:
    """What to draw.

    Attributes:
        slice_axis: Voxel axis (0, 1, 2 for ``i, j, k``) along which slices were scored.
        slices: Indices along ``slice_axis`` to show, in display order (slice position).
        slice_scores: Score shown under each panel (same length as ``slices``).
        window: ``(low, high)`` scan intensities mapped to black and white.
        title: Study label (its output folder name) and the study score.
        smoke: Label the figure "SMOKE RUN - random weights".
        heat_floor: Heat below this is not drawn (transparent); the colour bar starts here.
        threshold: Mask threshold, named on the colour bar when given.
        ortho: Points shown in an orthogonal view each (a row of three planes with a crosshair).
        patient_geometry: The headers place the image in the patient. Without (a radiograph, a
            secondary capture, a 2D image file: placed at the origin as SimpleITK reads it) the
            panels show the image as stored, with no orientation letters and no slice position,
            which would be invented.
    """

    slice_axis: int
    slices: tuple[int, ...]
    slice_scores: tuple[float, ...]
    window: tuple[float, float]
    title: str
    smoke: bool = False
    heat_floor: float = HEAT_FLOOR
    threshold: float | None = None
    ortho: tuple[OrthoPoint, ...] = ()
    patient_geometry: bool = True


def slice_level(affine_ras: np.ndarray, axis: int, index: int, shape: tuple[int, ...] | None = None) -> float:
    """RAS coordinate (mm) of slice ``index`` along the RAS axis its normal follows.

    Measured at the slice's centre (``shape`` given) or at its first voxel; either way it orders
    the slices of one axis the same.
    """
    centre = (np.array(shape[:3], dtype=float) - 1) / 2 if shape is not None else np.zeros(3)
    centre[axis] = index
    ras = np.asarray(affine_ras)[:3, :3] @ centre + np.asarray(affine_ras)[:3, 3]
    return float(ras[_POSITION[slice_normal(affine_ras, axis)][0]])


def slice_position_text(affine_ras: np.ndarray, axis: int, index: int, shape: tuple[int, ...]) -> str:
    """Position of slice ``index`` along its normal in RAS mm, e.g. ``S 15.0 mm`` or ``L 3.5 mm``."""
    _, plus, minus = _POSITION[slice_normal(affine_ras, axis)]
    value = slice_level(affine_ras, axis, index, shape)
    return f"{plus if value >= 0 else minus} {abs(value):.1f} mm"


def _where(affine_ras: np.ndarray, axis: int, index: int, shape: tuple[int, ...], spec: OverlaySpec) -> str:
    """A panel's position: ``S 15.0 mm``, or ``as stored`` for an image the headers do not place."""
    if not spec.patient_geometry:
        return "as stored, no patient position"
    return slice_position_text(affine_ras, axis, index, shape)


def _edge_letters(ax: Axes, normal: int) -> None:
    """Orientation letters on the four edges of a panel (white, bold)."""
    left, right, top, bottom = _EDGE_LETTERS[normal]
    for x, y, text, ha, va in (
        (0.02, 0.5, left, "left", "center"),
        (0.98, 0.5, right, "right", "center"),
        (0.5, 0.98, top, "center", "top"),
        (0.5, 0.02, bottom, "center", "bottom"),
    ):
        ax.text(
            x, y, text, ha=ha, va=va, color="white", fontsize=11, fontweight="bold", transform=ax.transAxes
        )


def _outline(ax: Axes, mask: np.ndarray, colour: str, style: str) -> bool:
    """Outline ``mask`` on ``ax``; returns whether anything was drawn.

    A slice one voxel wide has no outline to draw (and ``contour`` needs at least 2x2 samples).
    """
    if min(mask.shape) < 2 or not mask.any():
        return False
    ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.2, linestyles=style)
    return True


def _legend(fig: Figure, drawn: dict[str, bool]) -> None:
    """Outline legend below the panels (outside them: constrained layout makes room for it)."""
    handles = []
    if drawn["lesion"]:
        handles.append(Line2D([], [], color=LESION_COLOUR, lw=2, label="detected lesion"))
    if drawn["truth"]:
        handles.append(Line2D([], [], color=TRUTH_COLOUR, lw=2, ls="--", label="ground truth"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=10, frameon=False)


@dataclass(frozen=True)
class _Layers:
    """The volumes a panel draws from (one grid)."""

    scan: np.ndarray
    heat: np.ndarray
    affine: np.ndarray
    lesions: np.ndarray | None
    truth: np.ndarray | None


def _panel(ax: Axes, v: _Layers, axis: int, idx: int, spec: OverlaySpec, drawn: dict[str, bool]) -> Any:
    """One slice with heat and outlines; returns the heat image (for the colour bar)."""
    lo, hi = spec.window
    floor = float(np.clip(spec.heat_floor, 0.0, 0.99))
    aspect = pixel_aspect(v.affine, axis, display_orientation(v.affine, axis))
    base = display_slice(v.scan, v.affine, axis, idx).astype(np.float32)
    hmap = display_slice(v.heat, v.affine, axis, idx).astype(np.float32)
    ax.imshow(np.clip((base - lo) / max(hi - lo, 1e-6), 0, 1), cmap="gray", vmin=0, vmax=1, aspect=aspect)
    im = ax.imshow(
        np.ma.masked_less(hmap, floor), cmap="inferno", vmin=floor, vmax=1, alpha=0.6, aspect=aspect
    )
    if v.lesions is not None:
        m = display_slice(np.asarray(v.lesions), v.affine, axis, idx) > 0
        drawn["lesion"] |= _outline(ax, m, LESION_COLOUR, "solid")
    if v.truth is not None:
        t = display_slice(np.asarray(v.truth), v.affine, axis, idx) > 0
        drawn["truth"] |= _outline(ax, t, TRUTH_COLOUR, "dashed")
    if spec.patient_geometry:
        _edge_letters(ax, slice_normal(v.affine, axis))
    return im


def _ortho_row(
    axes: np.ndarray, v: _Layers, point: OrthoPoint, spec: OverlaySpec, drawn: dict[str, bool]
) -> Any:
    """Axial, coronal and sagittal planes through ``point`` with a crosshair on it."""
    im = None
    for ax, (name, normal) in zip(axes, _PLANES):
        axis = plane_axis(v.affine, normal)
        im = _panel(ax, v, axis, point.ijk[axis], spec, drawn)
        row, col = display_point(point.ijk, axis, v.scan.shape, display_orientation(v.affine, axis))
        for line in (ax.axhline(row), ax.axvline(col)):
            line.set(color=_CROSSHAIR, linewidth=0.8, linestyle=(0, (4, 3)))
        where = _where(v.affine, axis, point.ijk[axis], v.scan.shape, spec)
        ax.set_title(f"{name} ({where})\n{point.label}", fontsize=9)
    return im


def render_overlay(
    scan: np.ndarray,
    heat: np.ndarray,
    affine_ras: np.ndarray,
    spec: OverlaySpec,
    *,
    lesions: np.ndarray | None = None,
    truth: np.ndarray | None = None,
) -> bytes:
    """Render the overlay figure and return PNG bytes (deterministic for equal inputs).

    Args:
        scan: ``(I, J, K)`` scan intensities (any float range; ``spec.window`` maps it to grey).
        heat: ``(I, J, K)`` heat map in [0, 1], same grid.
        affine_ras: ``(4, 4)`` voxel -> RAS mm of the grid.
        spec: Slices, orthogonal points and labels; the points are not shown when an axis of the
            grid has a single voxel (a plane across it would be a line).
        lesions: ``(I, J, K)`` lesion mask or label map (outlined in :data:`LESION_COLOUR`).
        truth: ``(I, J, K)`` ground-truth mask (outlined dashed in :data:`TRUTH_COLOUR`).
    """
    # each plane of an orthogonal view is at least 2x2 exactly when every axis has two voxels
    ortho = spec.ortho if min(scan.shape[:3]) >= 2 else ()
    n = max(1, len(spec.slices))
    cols = 3 if ortho else min(n, 3)
    main_rows = (n + cols - 1) // cols
    rows = main_rows + len(ortho)
    fig = Figure(figsize=(4.2 * cols + 1.2, 4.2 * rows + 0.9), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    grid = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for ax in grid.ravel():
        ax.axis("off")
    v = _Layers(scan, heat, affine_ras, lesions, truth)
    im = None
    drawn = {"lesion": False, "truth": False}
    for ax, idx, score in zip(grid[:main_rows].ravel(), spec.slices, spec.slice_scores):
        im = _panel(ax, v, spec.slice_axis, idx, spec, drawn)
        where = _where(affine_ras, spec.slice_axis, idx, scan.shape, spec)
        ax.set_title(f"slice {idx} ({where})  score {score:.3f}", fontsize=10)
    for r, point in enumerate(ortho):
        im = _ortho_row(grid[main_rows + r], v, point, spec, drawn) or im
    title = spec.title + ("\nSMOKE RUN - random weights" if spec.smoke else "")
    fig.suptitle(title, fontsize=12, color="red" if spec.smoke else "black")
    _legend(fig, drawn)
    if im is not None:
        floor = float(np.clip(spec.heat_floor, 0.0, 0.99))
        # two lines: one row's colour bar (a 2D study's figure) is shorter than the text in one
        label = f"anomaly heat (0 normal .. 1 anomalous)\nshown >= {floor:g}"
        if spec.threshold is not None:
            label += f", lesions >= {spec.threshold:.3g}"
        fig.colorbar(im, ax=list(grid.ravel()), shrink=0.8, label=label)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
