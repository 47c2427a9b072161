"""How far reduced-precision (autocast) inference moves the results from float32.

Used by the tests (CPU bf16) and by ``bench/model_throughput.py --precision-report`` (CUDA
bf16/fp16 when a GPU is present) to report, for the same model and images, the largest absolute
change of the image scores and of the maps, and the Spearman rank correlation of each image's map
with its float32 map (the ranking of voxels is what thresholds and lesion ordering use).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.inference import Detector

__all__ = ["PrecisionDeviation", "precision_deviation", "spearman"]


class PrecisionDeviation(NamedTuple):
    """Deviation of one precision from float32 on a batch.

    Attributes:
        precision: ``bf16`` or ``fp16``.
        device: Device type the comparison ran on.
        max_abs_score: Largest ``|score - score_fp32|`` (scores in [0, 1]).
        max_abs_map: Largest ``|map - map_fp32|`` over all pixels (maps in [0, n_layers]).
        min_spearman_map: Smallest per-image Spearman correlation of map vs float32 map.
    """

    precision: str
    device: str
    max_abs_score: float
    max_abs_map: float
    min_spearman_map: float


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two same-shaped tensors (ties broken by position).

    Returns:
        Correlation in [-1, 1]; 1.0 when both are constant.
    """
    ra = _ranks(a.flatten())
    rb = _ranks(b.flatten())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float((ra.square().sum() * rb.square().sum()).sqrt())
    return 1.0 if denom == 0 else float((ra * rb).sum()) / denom


def _ranks(x: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(x.double(), stable=True)
    ranks = torch.empty_like(order, dtype=torch.float64)
    ranks[order] = torch.arange(x.numel(), dtype=torch.float64, device=x.device)
    return ranks


def precision_deviation(
    model: AnomalyCLIP, x: torch.Tensor, precision: str, device: str | torch.device = "cpu"
) -> PrecisionDeviation:
    """Score ``x`` in float32 and in ``precision`` and compare.

    Args:
        model: The model (moved to ``device``).
        x: ``(B, 3, S, S)`` float32, CLIP-normalised.
        precision: ``bf16`` or ``fp16`` (see :class:`~medzsad.model.inference.Detector`).
        device: Device to run both passes on.

    Returns:
        :class:`PrecisionDeviation`.
    """
    ref = Detector(model, device=device).score(x)
    low = Detector(model, device=device, precision=precision).score(x)
    rho = min(spearman(low.maps[i], ref.maps[i]) for i in range(x.shape[0]))
    return PrecisionDeviation(
        precision=precision,
        device=torch.device(device).type,
        max_abs_score=float((low.image_scores - ref.image_scores).abs().max()),
        max_abs_map=float((low.maps - ref.maps).abs().max()),
        min_spearman_map=rho,
    )
