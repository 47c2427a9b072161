"""Anomaly-detection metrics as reported in the AnomalyCLIP paper (pure numpy/scipy/scikit-image).

Image level: AUROC and average precision (AP) of the image scores against the image labels.
Pixel level: AUROC of the anomaly maps against the ground-truth masks, and AUPRO up to a false-positive
rate of 0.3 with the reference implementation's definition (:func:`aupro`, in
:mod:`medzsad.analysis.aupro` and re-exported here). Operating points: F1-max
with its threshold, Dice and IoU at a threshold.

Every curve is computed from one stable sort of the scores, in the same way as scikit-learn's
``roc_curve``/``precision_recall_curve``, so AUROC and AP agree with ``roc_auc_score`` and
``average_precision_score`` to rounding (tested to 1e-9). Metrics that are undefined for the data
(one class only, no anomalous region) are ``nan`` rather than an exception, so that a per-class table
can still be printed.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from medzsad.analysis.aupro import aupro, aupro_regions, aupro_thresholds

__all__ = [
    "aupro_regions",
    "BinaryCurve",
    "F1Max",
    "OperatingPoint",
    "SegmentationScores",
    "binary_curve",
    "auroc",
    "average_precision",
    "f1_max",
    "operating_point",
    "aupro",
    "aupro_thresholds",
    "dice_iou",
]

logger = logging.getLogger(__name__)

# numpy >= 2.0 names it trapezoid; numpy 1.x only has trapz.
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # type: ignore[attr-defined]

ArrayLike = npt.ArrayLike


class BinaryCurve(NamedTuple):
    """Cumulative counts at every distinct score, highest score first.

    Attributes:
        thresholds: (T,) float64, distinct scores in decreasing order; "positive" means ``score >= t``.
        tps: (T,) int64, true positives at each threshold.
        fps: (T,) int64, false positives at each threshold.
        n_pos: number of positive samples.
        n_neg: number of negative samples.
    """

    thresholds: np.ndarray
    tps: np.ndarray
    fps: np.ndarray
    n_pos: int
    n_neg: int


class F1Max(NamedTuple):
    """Best F1 over all thresholds and the threshold reaching it (``score >= threshold`` is positive)."""

    f1: float
    threshold: float


class OperatingPoint(NamedTuple):
    """A threshold and the confusion-matrix rates it gives.

    Attributes:
        method: how the threshold was chosen (``"f1"`` or ``"youden"``).
        threshold: predict anomalous where ``score >= threshold``.
        sensitivity: true-positive rate in [0, 1].
        specificity: true-negative rate in [0, 1].
        precision: positive predictive value in [0, 1].
        f1: F1 score in [0, 1].
    """

    method: str
    threshold: float
    sensitivity: float
    specificity: float
    precision: float
    f1: float


class SegmentationScores(NamedTuple):
    """Overlap of a thresholded map with the ground truth.

    Attributes:
        dice: Dice over all pixels pooled (micro average), in [0, 1].
        iou: intersection over union over all pixels pooled, in [0, 1].
        dice_per_image: mean over images of the per-image Dice (1.0 where both are empty).
        iou_per_image: mean over images of the per-image IoU (1.0 where both are empty).
    """

    dice: float
    iou: float
    dice_per_image: float
    iou_per_image: float


def _flat_labels_scores(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in size: {y.size} vs {s.size}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; metrics are undefined")
    return y > 0.5 if y.dtype.kind == "f" else y.astype(bool), s


def binary_curve(labels: ArrayLike, scores: ArrayLike) -> BinaryCurve:
    """Count true and false positives at every distinct score.

    Args:
        labels: any shape, bool or {0, 1} (floats are binarised at 0.5, as the reference does).
        scores: same number of elements, any real values; higher means more anomalous.

    Returns:
        The cumulative counts, as scikit-learn's ``_binary_clf_curve``.
    """
    y, s = _flat_labels_scores(labels, scores)
    order = np.argsort(s, kind="mergesort")[::-1]
    s_sorted = s[order]
    y_sorted = y[order]
    last_of_run = np.flatnonzero(np.diff(s_sorted))
    idx = np.concatenate([last_of_run, [y_sorted.size - 1]]) if y_sorted.size else last_of_run
    tps = np.cumsum(y_sorted, dtype=np.int64)[idx]
    fps = (idx + 1).astype(np.int64) - tps
    n_pos = int(tps[-1]) if tps.size else 0
    n_neg = int(fps[-1]) if fps.size else 0
    return BinaryCurve(s_sorted[idx], tps, fps, n_pos, n_neg)


def _as_curve(labels_or_curve: ArrayLike | BinaryCurve, scores: ArrayLike | None) -> BinaryCurve:
    if isinstance(labels_or_curve, BinaryCurve):
        return labels_or_curve
    if scores is None:
        raise ValueError("scores are required unless a BinaryCurve is given")
    return binary_curve(labels_or_curve, scores)


def auroc(labels: ArrayLike | BinaryCurve, scores: ArrayLike | None = None) -> float:
    """Area under the ROC curve (trapezoidal, as ``sklearn.metrics.roc_auc_score``).

    Args:
        labels: ground truth, bool or {0, 1}, any shape; or a precomputed :class:`BinaryCurve`.
        scores: scores of the same size (omit when ``labels`` is a curve).

    Returns:
        AUROC in [0, 1], or ``nan`` when only one class is present.
    """
    c = _as_curve(labels, scores)
    if c.n_pos == 0 or c.n_neg == 0:
        return float("nan")
    tpr = np.concatenate([[0.0], c.tps / c.n_pos])
    fpr = np.concatenate([[0.0], c.fps / c.n_neg])
    return float(_trapezoid(tpr, fpr))


def average_precision(labels: ArrayLike | BinaryCurve, scores: ArrayLike | None = None) -> float:
    """Average precision, ``sum_n (R_n - R_{n-1}) P_n`` (as ``sklearn.metrics.average_precision_score``).

    Args:
        labels: ground truth, bool or {0, 1}, any shape; or a precomputed :class:`BinaryCurve`.
        scores: scores of the same size (omit when ``labels`` is a curve).

    Returns:
        AP in [0, 1], or ``nan`` when there is no positive sample.
    """
    c = _as_curve(labels, scores)
    if c.n_pos == 0:
        return float("nan")
    precision = c.tps / (c.tps + c.fps)
    recall = c.tps / c.n_pos
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def f1_max(labels: ArrayLike | BinaryCurve, scores: ArrayLike | None = None) -> F1Max:
    """Highest F1 over all thresholds, and the threshold reaching it.

    Args:
        labels: ground truth, bool or {0, 1}, any shape; or a precomputed :class:`BinaryCurve`.
        scores: scores of the same size (omit when ``labels`` is a curve).

    Returns:
        F1-max in [0, 1] and its threshold (``score >= threshold`` is positive); ``nan`` for both when
        there is no positive sample.
    """
    c = _as_curve(labels, scores)
    if c.n_pos == 0:
        return F1Max(float("nan"), float("nan"))
    f1 = 2.0 * c.tps / (c.tps + c.fps + c.n_pos)
    k = int(np.argmax(f1))
    return F1Max(float(f1[k]), float(c.thresholds[k]))


def operating_point(
    labels: ArrayLike | BinaryCurve, scores: ArrayLike | None = None, method: str = "f1"
) -> OperatingPoint:
    """Choose a threshold and report sensitivity, specificity, precision and F1 there.

    Args:
        labels: ground truth, bool or {0, 1}, any shape; or a precomputed :class:`BinaryCurve`.
        scores: scores of the same size (omit when ``labels`` is a curve).
        method: ``"f1"`` (F1-max) or ``"youden"`` (maximum of sensitivity + specificity - 1).

    Returns:
        The operating point; rates are ``nan`` where undefined (a class absent).

    Raises:
        ValueError: unknown ``method``.
    """
    c = _as_curve(labels, scores)
    if method not in ("f1", "youden"):
        raise ValueError(f"unknown operating-point method {method!r}; expected 'f1' or 'youden'")
    if c.thresholds.size == 0:
        nan = float("nan")
        return OperatingPoint(method, nan, nan, nan, nan, nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = c.tps / c.n_pos if c.n_pos else np.full(c.tps.shape, np.nan)
        tnr = 1.0 - c.fps / c.n_neg if c.n_neg else np.full(c.fps.shape, np.nan)
        precision = c.tps / (c.tps + c.fps)
        f1 = 2.0 * c.tps / (c.tps + c.fps + c.n_pos)
    objective = f1 if method == "f1" else tpr + tnr
    k = int(np.nanargmax(objective)) if np.isfinite(objective).any() else 0
    return OperatingPoint(
        method, float(c.thresholds[k]), float(tpr[k]), float(tnr[k]), float(precision[k]), float(f1[k])
    )


def dice_iou(masks: ArrayLike, maps: ArrayLike, threshold: float) -> SegmentationScores:
    """Dice and IoU of ``maps >= threshold`` against the masks.

    Args:
        masks: (N, H, W) ground truth, bool or {0, 1} (floats binarised at 0.5).
        maps: (N, H, W) anomaly maps.
        threshold: anomaly-map value from which a pixel is predicted anomalous.

    Returns:
        Pooled and per-image-mean Dice and IoU; an image where prediction and truth are both empty
        scores 1.0, a pooled score with both empty is ``nan``.
    """
    m = np.asarray(masks)
    m = (m > 0.5) if m.dtype.kind == "f" else m.astype(bool)
    p = np.asarray(maps) >= threshold
    if m.shape != p.shape:
        raise ValueError(f"masks and maps differ in shape: {m.shape} vs {p.shape}")
    m2 = m.reshape(m.shape[0], -1) if m.ndim > 1 else m[None]
    p2 = p.reshape(p.shape[0], -1) if p.ndim > 1 else p[None]
    inter = np.logical_and(m2, p2).sum(axis=1).astype(np.float64)
    total = m2.sum(axis=1) + p2.sum(axis=1).astype(np.float64)
    union = total - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        dice_i = np.where(total > 0, 2.0 * inter / total, 1.0)
        iou_i = np.where(union > 0, inter / union, 1.0)
        dice = 2.0 * inter.sum() / total.sum() if total.sum() > 0 else float("nan")
        iou = inter.sum() / union.sum() if union.sum() > 0 else float("nan")
    return SegmentationScores(float(dice), float(iou), float(dice_i.mean()), float(iou_i.mean()))
