"""Volume -> model inputs and back.

Slices along the chosen axis are windowed, put in radiological display orientation, padded square,
resized to the model size and CLIP-normalised; the inverse puts model maps back on the source voxel
grid (exactly the source's shape and affine).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.scorer import SliceScorer
from medzsad.cohort.stages import PreparedStudy
from medzsad.config import PipelineConfig
from medzsad.errors import ConfigError
from medzsad.io.volume import LPS_TO_RAS, Volume
from medzsad.report.overlay import DisplayOrientation, display_orientation, from_display, to_display

__all__ = ["slice_axis", "window_for", "empty_slices", "prepare_study_slices", "CT_DEFAULT_WINDOW"]

#: Soft-tissue window (center, width) in HU used for CT when the pipeline gives none.
CT_DEFAULT_WINDOW = (40.0, 400.0)
_AXIS_NORMAL_LPS = {"axial": 2, "coronal": 1, "sagittal": 0}


def slice_axis(volume: Volume, orientation: str) -> int:
    """The voxel axis whose direction is closest to the normal of ``axial``/``coronal``/``sagittal``."""
    m = LPS_TO_RAS[:3, :3] @ volume.affine_ras[:3, :3]
    m = m / np.linalg.norm(m, axis=0, keepdims=True)
    return int(np.argmax(np.abs(m[_AXIS_NORMAL_LPS[orientation], :])))


def window_for(volume: Volume, pipeline: PipelineConfig) -> tuple[float, float]:
    """``(low, high)`` intensities mapped to 0 and 1.

    The pipeline's window, else the CT soft-tissue window, else the 0.5-99.5 percentiles of the
    non-background voxels (MR and unknown modalities).
    """
    w = pipeline.window
    if w is not None and w.center is not None and w.width is not None:
        return w.center - w.width / 2, w.center + w.width / 2
    if w is None and volume.modality == "CT":
        c, width = CT_DEFAULT_WINDOW
        return c - width / 2, c + width / 2
    lo_p, hi_p = w.percentiles if w is not None and w.percentiles is not None else (0.5, 99.5)
    data = volume.data
    fg = data[data > data.min()]
    vals = fg if fg.size else data.ravel()
    lo, hi = np.percentile(vals, [lo_p, hi_p])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def empty_slices(windowed: np.ndarray, axis: int, min_fraction: float = 0.01) -> np.ndarray:
    """``(K,)`` bool: slices where under ``min_fraction`` of the pixels are above 5 % of the window."""
    fg = (windowed > 0.05).mean(axis=tuple(a for a in range(3) if a != axis))
    return fg < min_fraction


def _to_model(slices: np.ndarray, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``(N, r, c)`` in [0, 1] -> ``(N, 3, size, size)`` CLIP-normalised (padded square, bilinear)."""
    n, r, c = slices.shape
    side = max(r, c)
    padded = np.zeros((n, side, side), dtype=np.float32)
    r0, c0 = (side - r) // 2, (side - c) // 2
    padded[:, r0 : r0 + r, c0 : c0 + c] = slices
    x = torch.from_numpy(padded)[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)
    x = x.clamp(0, 1).expand(-1, 3, -1, -1)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


def _from_model(maps: np.ndarray, shape_rc: tuple[int, int]) -> np.ndarray:
    """``(N, S, S)`` -> ``(N, r, c)``: resize to the padded square and crop (inverse of :func:`_to_model`)."""
    r, c = shape_rc
    side = max(r, c)
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None]
    x = F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)[:, 0].numpy()
    r0, c0 = (side - r) // 2, (side - c) // 2
    return x[:, r0 : r0 + r, c0 : c0 + c]


class _Inverse:
    """Model-space maps ``(N, S, S)`` -> ``(I, J, K)`` float32 on the source grid."""

    def __init__(
        self, shape: tuple[int, int, int], axis: int, index: np.ndarray, o: DisplayOrientation
    ) -> None:
        self.shape, self.axis, self.index, self.o = shape, axis, index, o

    def __call__(self, maps: np.ndarray) -> np.ndarray:
        in_plane = [self.shape[a] for a in range(3) if a != self.axis]
        disp_rc = (in_plane[1], in_plane[0]) if self.o.transpose else (in_plane[0], in_plane[1])
        slices = from_display(_from_model(maps, disp_rc), self.o)  # (N, a, b) in voxel order
        out = np.zeros(self.shape, dtype=np.float32)
        moved = np.moveaxis(out, self.axis, 0)  # view: (K, a, b)
        moved[self.index] = slices
        return out


def prepare_study_slices(
    study: StudyInput, volume: Volume, series: dict[str, Any], pipeline: PipelineConfig, scorer: SliceScorer
) -> PreparedStudy:
    """Cut, window, orient and resize the slices of ``volume`` for ``scorer``.

    Raises:
        ConfigError: A named preset (only ``auto`` is built in here).
    """
    if pipeline.preset != "auto":
        raise ConfigError(f"pipeline preset {pipeline.preset!r} is not available; use preset: auto")
    axis = slice_axis(volume, pipeline.axis or "axial")
    lo, hi = window_for(volume, pipeline)
    windowed = np.clip((volume.data.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    n = volume.shape_ijk[axis]
    skip_empty = True if pipeline.skip_empty_slices is None else pipeline.skip_empty_slices
    skipped = empty_slices(windowed, axis) if skip_empty else np.zeros(n, dtype=bool)
    index = np.flatnonzero(~skipped)
    o = display_orientation(volume.affine_ras, axis)
    stack = to_display(np.moveaxis(windowed, axis, 0)[index], o)  # (N, rows, cols)
    images = _to_model(stack, scorer.image_size, tuple(scorer.mean), tuple(scorer.std))
    return PreparedStudy(
        study=study,
        volume=volume,
        images=images,
        slice_index=index,
        n_slices=n,
        skipped=skipped,
        slice_axis=axis,
        to_source=_Inverse(volume.shape_ijk, axis, index, o),
        window=(lo, hi),
        series=dict(series),
    )
