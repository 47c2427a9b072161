"""Collect predictions per class and turn them into a paper-style :class:`MetricsTable`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from medzsad.analysis import metrics as M
from medzsad.eval.table import MetricsRow, MetricsTable

__all__ = [
    "IMAGE_COLUMNS",
    "PIXEL_COLUMNS",
    "ALL_COLUMNS",
    "ClassPredictions",
    "PredictionAccumulator",
    "class_metrics",
    "metrics_table",
]

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image_auroc", "image_ap", "image_f1_max")
PIXEL_COLUMNS = ("pixel_auroc", "pixel_aupro", "pixel_f1_max", "dice", "iou")
ALL_COLUMNS = IMAGE_COLUMNS + PIXEL_COLUMNS


@dataclass
class ClassPredictions:
    """Predictions and ground truth of one class.

    Attributes:
        labels: (N,) int64 image labels, 0 normal, 1 anomalous.
        scores: (N,) float64 image anomaly scores.
        masks: (M, H, W) bool ground truth of the M images whose mask is known (normal images count as
            known, all-zero), or ``None`` when none is known.
        maps: (M, H, W) float32 anomaly maps of the same M images, or ``None``.
    """

    labels: np.ndarray
    scores: np.ndarray
    masks: np.ndarray | None = None
    maps: np.ndarray | None = None

    @property
    def n_images(self) -> int:
        """Number of images."""
        return int(self.labels.size)

    @property
    def n_anomalous(self) -> int:
        """Number of anomalous images."""
        return int((self.labels > 0).sum())


@dataclass
class _Parts:
    labels: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    maps: list[np.ndarray] = field(default_factory=list)


class PredictionAccumulator:
    """Gather batch results per class, then build :class:`ClassPredictions`.

    Example:
        >>> acc = PredictionAccumulator()
        >>> acc.add(["brain"], np.array([1]), np.array([0.9]))
        >>> acc.result()["brain"].n_anomalous
        1
    """

    def __init__(self) -> None:
        self._parts: dict[str, _Parts] = {}

    def add(
        self,
        class_names: Sequence[str],
        labels: np.ndarray,
        scores: np.ndarray,
        masks: np.ndarray | None = None,
        maps: np.ndarray | None = None,
        mask_known: np.ndarray | None = None,
    ) -> None:
        """Add one batch.

        Args:
            class_names: (B,) class of each image.
            labels: (B,) int image labels.
            scores: (B,) float image scores.
            masks: (B, H, W) ground truth in {0, 1}, or ``None`` for image-level only.
            maps: (B, H, W) anomaly maps, or ``None``.
            mask_known: (B,) bool, whether each image's mask is known; default all known.
        """
        labels = np.asarray(labels).reshape(-1)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        known = np.ones(labels.size, dtype=bool) if mask_known is None else np.asarray(mask_known, bool)
        for i, name in enumerate(class_names):
            p = self._parts.setdefault(str(name), _Parts())
            p.labels.append(labels[i : i + 1])
            p.scores.append(scores[i : i + 1])
            if masks is not None and maps is not None and known[i]:
                p.masks.append(np.asarray(masks[i]) > 0.5)
                p.maps.append(np.asarray(maps[i], dtype=np.float32))

    def result(self) -> dict[str, ClassPredictions]:
        """Predictions per class, classes in the order first seen."""
        out: dict[str, ClassPredictions] = {}
        for name, p in self._parts.items():
            out[name] = ClassPredictions(
                labels=np.concatenate(p.labels).astype(np.int64),
                scores=np.concatenate(p.scores),
                masks=np.stack(p.masks) if p.masks else None,
                maps=np.stack(p.maps) if p.maps else None,
            )
        return out


def class_metrics(pred: ClassPredictions, pixel_threshold: float | None = None) -> dict[str, float]:
    """All metrics of one class.

    Args:
        pred: the class's predictions.
        pixel_threshold: anomaly-map value for Dice/IoU; default the class's pixel F1-max threshold.

    Returns:
        Metric key -> value (``nan`` where undefined), plus ``image_threshold`` and ``pixel_threshold``
        (the F1-max thresholds).
    """
    curve = M.binary_curve(pred.labels, pred.scores)
    image_f1 = M.f1_max(curve)
    out = {
        "image_auroc": M.auroc(curve),
        "image_ap": M.average_precision(curve),
        "image_f1_max": image_f1.f1,
        "image_threshold": image_f1.threshold,
    }
    nan = math.nan
    pixel = dict.fromkeys(
        ("pixel_auroc", "pixel_aupro", "pixel_f1_max", "dice", "iou", "pixel_threshold"), nan
    )
    if pred.masks is not None and pred.maps is not None and pred.masks.any():
        pcurve = M.binary_curve(pred.masks, pred.maps)
        f1 = M.f1_max(pcurve)
        thr = f1.threshold if pixel_threshold is None else pixel_threshold
        seg = M.dice_iou(pred.masks, pred.maps, thr)
        pixel.update(
            pixel_auroc=M.auroc(pcurve),
            pixel_aupro=M.aupro(pred.masks, pred.maps),
            pixel_f1_max=f1.f1,
            dice=seg.dice,
            iou=seg.iou,
            pixel_threshold=thr,
        )
    out.update(pixel)
    return out


def metrics_table(
    preds: Mapping[str, ClassPredictions],
    columns: Sequence[str] = ALL_COLUMNS,
    pixel_threshold: float | None = None,
) -> MetricsTable:
    """Compute :func:`class_metrics` for every class and lay them out as the paper does.

    Args:
        preds: class name -> predictions.
        columns: metric keys to show, in order.
        pixel_threshold: fixed anomaly-map threshold for Dice/IoU; default each class's F1-max one.

    Returns:
        The table; ``extras`` holds each class's F1-max thresholds as ``<class>/image_threshold`` and
        ``<class>/pixel_threshold``.
    """
    rows = []
    extras: dict[str, float] = {}
    for name, pred in preds.items():
        values = class_metrics(pred, pixel_threshold)
        logger.debug("class %s: %s", name, values)
        extras[f"{name}/image_threshold"] = values["image_threshold"]
        extras[f"{name}/pixel_threshold"] = values["pixel_threshold"]
        rows.append(MetricsRow(name, {c: values[c] for c in columns}, pred.n_images, pred.n_anomalous))
    return MetricsTable(tuple(columns), tuple(rows), extras)
