"""A study after scoring: slice scores, the heat map on the source grid, lesions, the study score.

:func:`slice_scores` turns a study's raw model outputs (:class:`~medzsad.study.types.Scored`) into
:class:`SliceScores`; the heat map is put back into the source geometry, thresholded into lesions,
and the slice scores are reduced to the study score. Pure computation on a loaded study.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medzsad.analysis.lesions import LesionResult, find_lesions, threshold_value
from medzsad.config import StudyScoreRule, ThresholdRule
from medzsad.errors import GeometryError
from medzsad.io.volume import Volume
from medzsad.study.types import PreparedStudy

__all__ = [
    "SliceScores",
    "slice_scores",
    "assemble_heatmap",
    "scored_region",
    "study_score",
    "postprocess",
    "slice_positions_mm",
]


@dataclass(frozen=True)
class SliceScores:
    """Model outputs for one study.

    Attributes:
        image_scores: ``(N,)`` float32 in [0, 1], one per scored slice.
        maps: ``(N, S, S)`` float32 in [0, 1]: smoothed maps divided by the number of feature layers.
    """

    image_scores: np.ndarray
    maps: np.ndarray


def slice_scores(image_scores: np.ndarray, maps: np.ndarray, n_layers: int) -> SliceScores:
    """Raw model outputs of a study's slices -> :class:`SliceScores` (maps scaled to [0, 1]).

    Args:
        image_scores: ``(N,)`` scores in [0, 1].
        maps: ``(N, S, S)`` maps in [0, n_layers] as the model returns them.
        n_layers: Number of feature layers summed in ``maps``.
    """
    m = np.divide(np.asarray(maps, dtype=np.float32), np.float32(max(n_layers, 1)), dtype=np.float32)
    np.clip(m, np.float32(0.0), np.float32(1.0), out=m)  # in place: m is our own new array
    return SliceScores(np.asarray(image_scores).astype(np.float32), m)


def assemble_heatmap(prepared: PreparedStudy, scores: SliceScores) -> np.ndarray:
    """The heat map ``(I, J, K)`` float32 in [0, 1] in the source grid.

    Raises:
        GeometryError: The inverse transform returned a different shape than the source.
    """
    heat = np.array(prepared.to_source(scores.maps), dtype=np.float32)  # our own copy: edited in place
    if heat.shape != prepared.volume.shape_ijk:
        raise GeometryError(
            f"study {prepared.study.study_id}: heat map shape {heat.shape} != "
            f"source {prepared.volume.shape_ijk}"
        )
    np.nan_to_num(heat, copy=False, nan=0.0)
    return np.clip(heat, np.float32(0.0), np.float32(1.0), out=heat)


def scored_region(prepared: PreparedStudy) -> np.ndarray:
    """``(I, J, K)`` bool: voxels of the slices that were scored (the body for percentile thresholds)."""
    keep = np.zeros(prepared.n_slices, dtype=bool)
    keep[prepared.slice_index] = True
    shape = [1, 1, 1]
    shape[prepared.slice_axis] = prepared.n_slices
    return np.broadcast_to(keep.reshape(shape), prepared.volume.shape_ijk)


def study_score(scores: SliceScores, heat: np.ndarray, rule: StudyScoreRule) -> float:
    """The study score: max slice score, mean of the top-k slice scores, or max of the heat map."""
    if rule.method == "max_map":
        return float(heat.max()) if heat.size else 0.0
    s = np.sort(scores.image_scores)[::-1]
    if rule.method == "topk_mean":
        return float(s[: rule.k].mean())
    return float(s[0])


def postprocess(
    heat: np.ndarray, volume: Volume, rule: ThresholdRule, body: np.ndarray | None
) -> LesionResult:
    """Threshold, 3D connected components and minimum volume (see :mod:`medzsad.analysis.lesions`)."""
    t = threshold_value(heat, rule.method, rule.value, body)
    return find_lesions(heat, volume.affine_ras, t, rule.min_lesion_ml)


def slice_positions_mm(volume: Volume, axis: int, n: int) -> np.ndarray:
    """Signed position (mm) of each slice plane along its normal, in LPS (DICOM SliceLocation sense)."""
    a = volume.affine_lps
    in_plane = [x for x in range(3) if x != axis]
    normal = np.cross(a[:3, in_plane[0]], a[:3, in_plane[1]])
    norm = np.linalg.norm(normal)
    if norm == 0:
        raise GeometryError("degenerate affine: slice normal is zero")
    normal /= norm
    step = a[:3, axis]
    return np.array([float((a[:3, 3] + step * k) @ normal) for k in range(n)])
