"""A study after scoring: slice scores, the heat map on the source grid, lesions, the study score.

:func:`slice_scores` reduces a study's raw model outputs (:class:`~medzsad.study.types.Scored`) to
:class:`SliceScores`; :func:`assemble_heatmap` puts the maps back into the source geometry as the
heat map, which is thresholded into lesions; the study score comes from the slice scores or the
heat map. Pure computation on a loaded study.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medzsad.analysis.lesions import LesionResult, clamp_heat, find_lesions, threshold_value, top_volume_mean
from medzsad.config import StudyScoreRule, ThresholdRule
from medzsad.errors import GeometryError
from medzsad.io.volume import Volume
from medzsad.study.types import AxisSlices, PreparedStudy

__all__ = [
    "SliceScores",
    "slice_scores",
    "assemble_heatmap",
    "scored_region",
    "study_score",
    "GEOMETRIC_FLOOR",
    "postprocess",
    "slice_positions_mm",
]


@dataclass(frozen=True)
class SliceScores:
    """Model outputs for one study, one value per scored slice.

    Attributes:
        image_scores: ``(N,)`` float32 in [0, 1].
        map_max: ``(N,)`` float32: each slice's map maximum (slices.csv). The maps themselves go
            into the heat map (:func:`assemble_heatmap`) and are not kept with the scores.
    """

    image_scores: np.ndarray
    map_max: np.ndarray


def slice_scores(image_scores: np.ndarray, maps: np.ndarray) -> SliceScores:
    """A study's model outputs (:class:`~medzsad.study.types.Scored`) -> :class:`SliceScores`.

    Args:
        image_scores: ``(N,)`` scores in [0, 1].
        maps: ``(N, S, S)`` float32 maps in [0, 1], the mean over the feature layers (only read).
    """
    maps = np.asarray(maps, dtype=np.float32)
    map_max = maps.reshape(maps.shape[0], -1).max(axis=1) if maps.size else np.zeros(len(maps), np.float32)
    return SliceScores(np.asarray(image_scores).astype(np.float32), map_max)


#: Heat floor of the geometric fusion (a log needs a positive value; 0 in one axis stays ~0).
GEOMETRIC_FLOOR = 1e-6


def _axis_heat(prepared: PreparedStudy, axis: AxisSlices, maps: np.ndarray) -> np.ndarray:
    """One axis's heat ``(I, J, K)`` float32 in [0, 1] on the source grid (our own array)."""
    heat = np.asarray(axis.to_source(maps[axis.rows]), dtype=np.float32)  # a new array: edited in place
    if heat.shape != prepared.volume.shape_ijk:
        raise GeometryError(
            f"study {prepared.study.study_id}: {axis.axis} heat map shape {heat.shape} != "
            f"source {prepared.volume.shape_ijk}"
        )
    return clamp_heat(heat)


def assemble_heatmap(prepared: PreparedStudy, maps: np.ndarray, fusion: str = "mean") -> np.ndarray:
    """The heat map ``(I, J, K)`` float32 in [0, 1] in the source grid, the axes' maps fused.

    Each axis's maps are put back on the source grid (:attr:`AxisSlices.to_source`), then fused
    voxel by voxel in the order of :attr:`PreparedStudy.axes`: ``mean``, ``geometric`` (the mean of
    logs, heat floored at :data:`GEOMETRIC_FLOOR`: a voxel is hot only where every axis agrees) or
    ``max``. At most two volumes are held at once.

    Args:
        prepared: The study.
        maps: ``(N, S, S)`` float32 in [0, 1], every axis's maps in the rows of
            :attr:`AxisSlices.rows` (:attr:`~medzsad.study.types.Scored.maps`; only read).
        fusion: ``mean``, ``geometric`` or ``max``.

    Raises:
        GeometryError: The inverse transform returned a different shape than the source.
        ValueError: An unknown fusion.
    """
    if fusion not in ("mean", "geometric", "max"):
        raise ValueError(f"unknown fusion {fusion!r}; use mean, geometric or max")
    acc: np.ndarray | None = None
    for axis in prepared.axes:
        heat = _axis_heat(prepared, axis, maps)
        if len(prepared.axes) == 1:
            return heat
        if fusion == "geometric":
            np.log(np.maximum(heat, np.float32(GEOMETRIC_FLOOR), out=heat), out=heat)
        if acc is None:
            acc = heat
        elif fusion == "max":
            np.maximum(acc, heat, out=acc)
        else:
            acc += heat
        del heat
    assert acc is not None  # noqa: S101 - a study has at least one axis
    if fusion == "max":
        return acc
    acc /= np.float32(len(prepared.axes))
    if fusion == "geometric":
        np.exp(acc, out=acc)
    return np.clip(acc, np.float32(0.0), np.float32(1.0), out=acc)


def scored_region(prepared: PreparedStudy) -> np.ndarray:
    """``(I, J, K)`` bool: voxels with heat on every axis (the body for percentile thresholds).

    One axis: the voxels of its scored slices. Several: the voxels inside the covered slab of every
    axis (scored or interpolated slices), i.e. the body's bounding box.
    """
    region: np.ndarray | None = None
    for axis in prepared.axes:
        shape = [1, 1, 1]
        shape[axis.slice_axis] = axis.n_slices
        covered = np.asarray(axis.covered, dtype=bool).reshape(shape)
        slab = np.broadcast_to(covered, prepared.volume.shape_ijk)
        region = slab if region is None else region & slab
    assert region is not None  # noqa: S101 - a study has at least one axis
    return region


def study_score(
    scores: SliceScores,
    heat: np.ndarray,
    rule: StudyScoreRule,
    region: np.ndarray | None = None,
    voxel_ml: float | None = None,
) -> float:
    """The study score of ``rule`` from the slice scores or the heat map.

    ``max_slice``: the highest slice score; ``topk_mean``: the mean of the ``k`` highest;
    ``max_map``: the heat map's maximum; ``top_volume``: the mean heat of the hottest
    ``rule.volume_ml`` of ``region``.

    Args:
        scores: The slice scores of every axis.
        heat: ``(I, J, K)`` heat map.
        rule: The cohort's ``output.study_score``.
        region: ``(I, J, K)`` bool, the scored region (``top_volume``; default the whole grid).
        voxel_ml: Volume of one voxel in mL (``top_volume``).

    Raises:
        ValueError: ``top_volume`` without ``voxel_ml``.
    """
    if rule.method == "max_map":
        return float(heat.max()) if heat.size else 0.0
    if rule.method == "top_volume":
        if voxel_ml is None:
            raise ValueError("study score top_volume needs the voxel volume")
        return top_volume_mean(heat, region, voxel_ml, rule.volume_ml)
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
