"""Per-study stages after loading: slice scores, assemble the heat map, post-process, study score.

Slices are scored in batches by the executor (:mod:`medzsad.cohort.pipeline`, batches may mix
studies); :func:`slice_scores` turns a study's raw model outputs into :class:`SliceScores`, the
heat map is put back into the source geometry, thresholded into lesions, and the slice scores are
reduced to the study score.

Loading (discover -> choose preset -> select series -> load -> preprocess) lives in
:mod:`medzsad.cohort.loading` and yields a :class:`PreparedStudy`; everything here is pure
computation on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medzsad.analysis.lesions import LesionResult, find_lesions, threshold_value
from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.reference_scorer import ReferenceScorer, slice_positions
from medzsad.cohort.scorer import SliceScorer
from medzsad.cohort.series_summary import SeriesSummary
from medzsad.config import StudyScoreRule, ThresholdRule
from medzsad.errors import GeometryError, InputError
from medzsad.io.volume import Volume

__all__ = [
    "PreparedStudy",
    "SliceScores",
    "score_slices",
    "slice_scores",
    "study_positions",
    "assemble_heatmap",
    "study_score",
    "postprocess",
    "slice_positions_mm",
]


@dataclass(frozen=True)
class PreparedStudy:
    """A loaded and preprocessed study, ready for the model.

    Attributes:
        study: The input it came from.
        volume: The source scan (geometry of every output).
        images: ``(N, 3, S, S)`` float32, CLIP-normalised model inputs of the kept slices.
        slice_index: ``(N,)`` int, index along ``slice_axis`` of each image.
        n_slices: Number of slices along ``slice_axis`` in the source.
        skipped: ``(n_slices,)`` bool, True for slices not scored (empty/background).
        slice_axis: Voxel axis (0, 1, 2) the slices are cut along.
        to_source: Maps ``(N, S, S)`` model-space maps (float32) to an ``(I, J, K)`` float32 array
            in the source grid (skipped slices 0).
        window: Display window ``(low, high)`` in scan units for the overlay.
        series: Chosen series (uid, description, modality, body part, preset, why chosen), or None
            for a study built without reading (tests).
        timings_s: Seconds spent per loading stage.
    """

    study: StudyInput
    volume: Volume
    images: torch.Tensor
    slice_index: np.ndarray
    n_slices: int
    skipped: np.ndarray
    slice_axis: int
    to_source: Callable[[np.ndarray], np.ndarray]
    window: tuple[float, float]
    series: SeriesSummary | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    def __getstate__(self) -> dict[str, Any]:
        # sent from a worker process as a numpy array: a plain pickled buffer, not torch's
        # shared-memory file descriptors (which need the sending worker alive until received)
        state = dict(self.__dict__)
        state["images"] = self.images.numpy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = {**state, "images": torch.from_numpy(state["images"])}
        for k, v in state.items():
            object.__setattr__(self, k, v)


@dataclass(frozen=True)
class SliceScores:
    """Model outputs for one study.

    Attributes:
        image_scores: ``(N,)`` float32 in [0, 1], one per scored slice.
        maps: ``(N, S, S)`` float32 in [0, 1]: smoothed maps divided by the number of feature layers.
    """

    image_scores: np.ndarray
    maps: np.ndarray


def score_slices(prepared: PreparedStudy, scorer: SliceScorer, batch_size: int) -> SliceScores:
    """Run one study's kept slices through the model in batches of ``batch_size``.

    Outside a cohort run: the cohort pipeline batches across studies (:mod:`medzsad.cohort.pipeline`).

    Raises:
        InputError: The study has no slice to score (every slice empty).
    """
    n = int(prepared.images.shape[0])
    if n == 0:
        raise InputError(
            f"study {prepared.study.study_id}: every slice was skipped as empty; nothing to score"
        )
    positions = study_positions(prepared, scorer)
    scores, maps = [], []
    for start in range(0, n, batch_size):
        batch = prepared.images[start : start + batch_size]
        if positions is None:
            res = scorer.score(batch)
        else:
            res = scorer.score(batch, positions[start : start + batch_size])  # type: ignore[call-arg]
        scores.append(res.image_scores.detach().float().cpu().numpy())
        maps.append(res.maps.detach().float().cpu().numpy())
    return slice_scores(np.concatenate(scores), np.concatenate(maps), scorer.n_layers)


def study_positions(prepared: PreparedStudy, scorer: object) -> torch.Tensor | None:
    """``(N,)`` body coordinates of the scored slices when ``scorer`` uses references, else ``None``.

    With references, each slice is compared with reference patches of its own body level.
    """
    if not isinstance(scorer, ReferenceScorer):
        return None
    return slice_positions(prepared.volume.affine_ras, prepared.slice_axis, prepared.slice_index)


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
