"""The cohort's scorer with few-shot normal references (``model.references: true``).

Wraps a :class:`~medzsad.cohort.scorer.ModelScorer` and a reference bank; slices are scored with
the blended map of :class:`~medzsad.model.reference_scoring.ReferenceDetector`, each slice compared
with reference patches from its own body level (:func:`~medzsad.references.positions.body_coordinates`).
"""

from __future__ import annotations

import numpy as np
import torch

from medzsad.cohort.scorer import ModelScorer, ScorerInfo
from medzsad.model.inference import DetectionResult
from medzsad.model.reference_scoring import ReferenceDetector
from medzsad.model.references import PatchBank, SearchOptions
from medzsad.references.positions import body_coordinates

__all__ = ["ReferenceScorer", "slice_positions"]


class ReferenceScorer(ModelScorer):
    """A :class:`~medzsad.cohort.scorer.ModelScorer` that blends in the reference distance.

    Args:
        base: The zero-shot scorer (its detector encodes the slices).
        bank: Reference bank built with the same model.
        weight: ``w`` of the blend in [0, 1].
        window: Half-width of the body-coordinate window.
        reference_ids: Safe ids of the reference studies (provenance).
    """

    def __init__(
        self,
        base: ModelScorer,
        bank: PatchBank,
        weight: float,
        window: float,
        reference_ids: tuple[str, ...] = (),
    ) -> None:
        info = ScorerInfo(
            f"{base.info.description} + {len(reference_ids)} normal references (w={weight:g})",
            base.info.model_hash,
            {**base.info.weights, "references": list(reference_ids)},
            base.info.smoke,
        )
        super().__init__(base.detector, base.n_layers, info)
        self.base = base
        self.reference = ReferenceDetector(base.detector, bank, weight, SearchOptions(window=window))
        self.reference_ids = reference_ids

    def score(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> DetectionResult:
        """``x`` ``(B, 3, S, S)`` with body coordinates ``(B,)`` -> blended scores and maps."""
        return self.reference.score(x, positions)


def slice_positions(affine_ras: np.ndarray, slice_axis: int, slice_index: np.ndarray) -> torch.Tensor:
    """``(N,)`` float32 body coordinates of the scored slices of a study (see ``body_coordinates``)."""
    return torch.from_numpy(body_coordinates(affine_ras, slice_axis, slice_index))
