"""overlay.png: the highest-scoring slices with the heat map over the windowed scan.

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
from typing import NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from medzsad.io.volume import LPS_TO_RAS

__all__ = [
    "OverlaySpec",
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

# Wanted LPS direction of screen columns (left -> right) and rows (top -> bottom) per slice axis
# orientation: axial (normal ~S), coronal (normal ~P), sagittal (normal ~L).
_SCREEN_LPS = {2: ((1, 0, 0), (0, 1, 0)), 1: ((1, 0, 0), (0, 0, -1)), 0: ((0, 1, 0), (0, 0, -1))}


@dataclass(frozen=True)
class OverlaySpec:
    """What to draw.

    Attributes:
        slice_axis: Voxel axis (0, 1, 2 for ``i, j, k``) along which slices were scored.
        slices: Indices along ``slice_axis`` to show, in display order (highest score first).
        slice_scores: Score shown under each panel (same length as ``slices``).
        window: ``(low, high)`` scan intensities mapped to black and white.
        title: Study label (hashed id unless ids are shown) and the study score.
        smoke: Label the figure "SMOKE RUN - random weights".
        heat_floor: Heat below this is not drawn (transparent); the colour bar starts here.
        threshold: Mask threshold, named on the colour bar when given.
    """

    slice_axis: int
    slices: tuple[int, ...]
    slice_scores: tuple[float, ...]
    window: tuple[float, float]
    title: str
    smoke: bool = False
    heat_floor: float = HEAT_FLOOR
    threshold: float | None = None


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
    m = LPS_TO_RAS[:3, :3] @ np.asarray(affine_ras)[:3, :3]
    in_plane = [a for a in range(3) if a != axis]
    lps = m[:, in_plane]  # (3, 2) direction of each in-plane voxel axis
    normal = int(np.argmax(np.abs(m[:, axis])))
    want_col, want_row = (np.array(v, dtype=float) for v in _SCREEN_LPS[normal])
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


def _slice_normal(affine_ras: np.ndarray, axis: int) -> int:
    """LPS axis (0 sagittal, 1 coronal, 2 axial) closest to the normal of slices along ``axis``."""
    m = LPS_TO_RAS[:3, :3] @ np.asarray(affine_ras)[:3, :3]
    return int(np.argmax(np.abs(m[:, axis])))


def slice_position_text(affine_ras: np.ndarray, axis: int, index: int, shape: tuple[int, ...]) -> str:
    """Position of slice ``index`` along its normal in RAS mm, e.g. ``S 15.0 mm`` or ``L 3.5 mm``."""
    centre = (np.array(shape[:3], dtype=float) - 1) / 2
    centre[axis] = index
    ras = np.asarray(affine_ras)[:3, :3] @ centre + np.asarray(affine_ras)[:3, 3]
    ras_axis, plus, minus = _POSITION[_slice_normal(affine_ras, axis)]
    value = float(ras[ras_axis])
    return f"{plus if value >= 0 else minus} {abs(value):.1f} mm"


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
    if not mask.any():
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
        spec: Slices and labels.
        lesions: ``(I, J, K)`` lesion mask or label map (outlined in :data:`LESION_COLOUR`).
        truth: ``(I, J, K)`` ground-truth mask (outlined dashed in :data:`TRUTH_COLOUR`).
    """
    n = max(1, len(spec.slices))
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols + 1.2, 4.2 * rows + 0.9), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    lo, hi = spec.window
    normal = _slice_normal(affine_ras, spec.slice_axis)
    floor = float(np.clip(spec.heat_floor, 0.0, 0.99))
    im = None
    drawn = {"lesion": False, "truth": False}
    for ax, idx, score in zip(axes, spec.slices, spec.slice_scores):
        base = display_slice(scan, affine_ras, spec.slice_axis, idx).astype(np.float32)
        hmap = display_slice(heat, affine_ras, spec.slice_axis, idx).astype(np.float32)
        ax.imshow(np.clip((base - lo) / max(hi - lo, 1e-6), 0, 1), cmap="gray", vmin=0, vmax=1)
        im = ax.imshow(np.ma.masked_less(hmap, floor), cmap="inferno", vmin=floor, vmax=1, alpha=0.6)
        if lesions is not None:
            m = display_slice(np.asarray(lesions), affine_ras, spec.slice_axis, idx) > 0
            drawn["lesion"] |= _outline(ax, m, LESION_COLOUR, "solid")
        if truth is not None:
            t = display_slice(np.asarray(truth), affine_ras, spec.slice_axis, idx) > 0
            drawn["truth"] |= _outline(ax, t, TRUTH_COLOUR, "dashed")
        _edge_letters(ax, normal)
        where = slice_position_text(affine_ras, spec.slice_axis, idx, scan.shape)
        ax.set_title(f"slice {idx} ({where})  score {score:.3f}", fontsize=10)
    title = spec.title + ("\nSMOKE RUN - random weights" if spec.smoke else "")
    fig.suptitle(title, fontsize=12, color="red" if spec.smoke else "black")
    _legend(fig, drawn)
    if im is not None:
        label = f"anomaly heat (0 normal .. 1 anomalous); shown >= {floor:g}"
        if spec.threshold is not None:
            label += f", lesions >= {spec.threshold:.3g}"
        fig.colorbar(im, ax=list(axes), shrink=0.8, label=label)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
