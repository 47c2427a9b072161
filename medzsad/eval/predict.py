"""Score a list of labelled samples with a detector and gather the predictions per class."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from medzsad.datasets.images import SampleDataset, load_batches
from medzsad.datasets.samples import Sample
from medzsad.eval.evaluation import ClassPredictions, PredictionAccumulator
from medzsad.model.inference import Detector
from medzsad.model.reference_scoring import ReferenceDetector
from medzsad.progress import progress_bar

__all__ = ["ImageScore", "Predictions", "predict_samples"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageScore:
    """Score of one image (a row of the per-image CSV).

    Attributes:
        image: Path of the image (or of the volume the slice was cut from).
        class_name: Class (one row of the metrics table).
        label: 0 normal, 1 anomalous.
        score: Image anomaly score.
        max_map: Maximum of the anomaly map.
        mask_known: Whether the pixel ground truth is known.
        slice_index: For slices of a volume, :attr:`~medzsad.datasets.samples.Sample.slice_index`
            (index along the cut axis in the volume's stored voxel order); ``None`` for 2D images.
    """

    image: str
    class_name: str
    label: int
    score: float
    max_map: float
    mask_known: bool
    slice_index: int | None = None


@dataclass(frozen=True)
class Predictions:
    """Predictions of a dataset.

    Attributes:
        per_class: class name -> :class:`ClassPredictions` (maps only of images with known masks).
        images: one :class:`ImageScore` per sample, in sample order.
    """

    per_class: dict[str, ClassPredictions]
    images: tuple[ImageScore, ...]


def predict_samples(
    detector: Detector | ReferenceDetector,
    samples: Sequence[Sample],
    batch_size: int = 8,
    num_workers: int = 0,
    pixel_level: bool = True,
    progress: bool | None = None,
    dataset: Dataset | None = None,
) -> Predictions:
    """Score every sample.

    Args:
        detector: the model wrapper (its ``image_size``, ``mean`` and ``std`` set the transforms).
        samples: the labelled images.
        batch_size: images per forward.
        num_workers: data-loading processes.
        pixel_level: keep anomaly maps and masks for pixel metrics (memory: ``4 S^2`` bytes per image).
        progress: progress bar (``None``: only on a terminal).
        dataset: loader of ``samples`` (default :class:`SampleDataset`; e.g. volume slices).

    Returns:
        :class:`Predictions`.
    """
    ds = (
        dataset
        if dataset is not None
        else SampleDataset(samples, detector.image_size, detector.mean, detector.std)
    )
    acc = PredictionAccumulator()
    rows: list[ImageScore] = []
    n_items = len(ds)  # type: ignore[arg-type]
    batches = [list(range(i, min(i + batch_size, n_items))) for i in range(0, n_items, batch_size)]
    with progress_bar(n_items, enabled=progress, desc="scoring", unit="img") as bar:
        for batch in load_batches(ds, batches, num_workers):
            rows += _score_batch(detector, batch, samples, acc, pixel_level)
            bar.update(len(batch["index"]))
    return Predictions(acc.result(), tuple(rows))


def _score_batch(
    detector: Detector | ReferenceDetector,
    batch: dict[str, Any],
    samples: Sequence[Sample],
    acc: PredictionAccumulator,
    pixel_level: bool,
) -> list[ImageScore]:
    """Score one batch, add it to ``acc`` and return its per-image rows."""
    res = detector.score(batch["image"])
    scores = res.image_scores.numpy().astype(np.float64)
    maps = res.maps.numpy()
    known = batch["mask_known"].numpy()
    acc.add(
        batch["class_name"],
        batch["label"].numpy(),
        scores,
        batch["mask"].numpy() if pixel_level else None,
        maps if pixel_level else None,
        known,
    )
    rows = []
    for j, idx in enumerate(batch["index"].tolist()):
        s = samples[idx]
        rows.append(
            ImageScore(
                str(s.image),
                s.class_name,
                int(s.label),
                float(scores[j]),
                float(maps[j].max()),
                bool(known[j]),
                s.slice_index,
            )
        )
    return rows
