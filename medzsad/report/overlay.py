"""overlay.png: the highest-scoring slices with the heat map blended over the windowed scan.

Slices are shown in radiological convention (patient left on the right of the screen, anterior or
superior at the top), derived from the affine, so any source orientation displays the same way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medzsad.io.volume import LPS_TO_RAS  # noqa: E402

__all__ = [
    "OverlaySpec",
    "DisplayOrientation",
    "display_orientation",
    "to_display",
    "from_display",
    "display_slice",
    "render_overlay",
]

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
    """

    slice_axis: int
    slices: tuple[int, ...]
    slice_scores: tuple[float, ...]
    window: tuple[float, float]
    title: str
    smoke: bool = False


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
    return to_display(np.take(volume, index, axis=axis), display_orientation(affine_ras, axis))


def render_overlay(scan: np.ndarray, heat: np.ndarray, affine_ras: np.ndarray, spec: OverlaySpec) -> bytes:
    """Render the overlay figure and return PNG bytes (deterministic for equal inputs).

    Args:
        scan: ``(I, J, K)`` scan intensities (any float range; ``spec.window`` maps it to grey).
        heat: ``(I, J, K)`` heat map in [0, 1], same grid.
        affine_ras: ``(4, 4)`` voxel -> RAS mm of the grid.
        spec: Slices and labels.
    """
    n = max(1, len(spec.slices))
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 0.8, 3.4 * rows), squeeze=False, dpi=100)
    lo, hi = spec.window
    im = None
    for ax in axes.ravel():
        ax.axis("off")
    for ax, idx, score in zip(axes.ravel(), spec.slices, spec.slice_scores):
        base = display_slice(scan, affine_ras, spec.slice_axis, idx).astype(np.float32)
        hmap = display_slice(heat, affine_ras, spec.slice_axis, idx).astype(np.float32)
        ax.imshow(np.clip((base - lo) / max(hi - lo, 1e-6), 0, 1), cmap="gray", vmin=0, vmax=1)
        im = ax.imshow(np.ma.masked_less(hmap, 0.05), cmap="inferno", vmin=0, vmax=1, alpha=0.55)
        ax.set_title(f"slice {idx}  score {score:.3f}", fontsize=9)
    title = spec.title + ("\nSMOKE RUN - random weights" if spec.smoke else "")
    fig.suptitle(title, fontsize=10, color="red" if spec.smoke else "black")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="anomaly heat [0, 1]")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
