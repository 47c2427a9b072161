"""The model behind one small protocol: slices and their body positions in, scores and maps out.

:class:`SliceScorer` is what every scoring path needs (:mod:`medzsad.study.scoring`). Its
``score`` always takes the slices' body coordinates: the zero-shot :class:`ModelScorer` ignores
them, the :class:`ReferenceScorer` compares each slice with reference patches from its own body
level. A scorer describes the model that was built (:class:`ScorerInfo`), which provenance, the
review page and the SR state. Building a scorer from a cohort's ``model`` section is
:mod:`medzsad.study.build`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from medzsad.model.config import AnomalyCLIPConfig
from medzsad.model.inference import DetectionResult, Detector
from medzsad.model.reference_scoring import ReferenceDetector
from medzsad.model.references import PatchBank, SearchOptions

__all__ = ["SliceScorer", "ScorerInfo", "ModelScorer", "ReferenceScorer", "describe_model"]


class SliceScorer(Protocol):
    """Scores a batch of CLIP-normalised slices.

    Attributes:
        image_size: Input side ``S``.
        n_layers: Number of feature layers summed in ``maps`` (maps range over [0, n_layers]).
        mean: CLIP normalisation mean (3,).
        std: CLIP normalisation std (3,).
    """

    image_size: int
    n_layers: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def score(self, x: torch.Tensor, positions: torch.Tensor) -> DetectionResult:
        """Score slices.

        Args:
            x: ``(B, 3, S, S)`` float32, CLIP-normalised.
            positions: ``(B,)`` float32 body coordinates in [0, 1] of the slices.

        Returns:
            Scores ``(B,)`` in [0, 1] and maps ``(B, S, S)`` in [0, n_layers].
        """
        ...


def describe_model(config: AnomalyCLIPConfig, *, tiny: bool = False) -> str:
    """The built model in one line: backbone, input size, feature layers and the DPAM span.

    E.g. ``AnomalyCLIP on ViT-L-14-336, 518 px, feature layers 24, DPAM on the last 19 blocks``.
    """
    layers = ", ".join(str(x) for x in config.feature_layers)
    name = "tiny random AnomalyCLIP (test model)" if tiny else "AnomalyCLIP"
    return (
        f"{name} on {config.backbone}, {config.image_size} px, feature layers {layers}, "
        f"DPAM on the last {config.dpam_layers} blocks"
    )


@dataclass(frozen=True)
class ScorerInfo:
    """What the built model is: for provenance, the review page, the SR and the config hash.

    Attributes:
        description: The built model in one line (:func:`describe_model`), with the references.
        model_hash: sha256 of the architecture and the identity of the weight files.
        weights: Name, path, size of each weight file (and the reference ids).
        smoke: Random weights (outputs are labelled as a smoke run).
        weight_names: The weight names as the cohort gives them (CLIP, prompts).
    """

    description: str
    model_hash: str
    weights: dict[str, Any] = field(default_factory=dict)
    smoke: bool = False
    weight_names: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (ledger metadata, provenance)."""
        return {
            "description": self.description,
            "model_hash": self.model_hash,
            "weights": self.weights,
            "smoke": self.smoke,
            "weight_names": list(self.weight_names),
        }


class ModelScorer:
    """A :class:`Detector` as a :class:`SliceScorer` (zero-shot: body positions are not used)."""

    def __init__(self, detector: Detector, n_layers: int, info: ScorerInfo) -> None:
        self.detector = detector
        self.image_size = detector.image_size
        self.n_layers = n_layers
        self.mean = detector.mean
        self.std = detector.std
        self.info = info

    def score(self, x: torch.Tensor, positions: torch.Tensor) -> DetectionResult:
        """See :meth:`SliceScorer.score`."""
        return self.detector.score(x)


class ReferenceScorer(ModelScorer):
    """A :class:`ModelScorer` that blends in the distance to few-shot normal references.

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
            base.info.weight_names,
        )
        super().__init__(base.detector, base.n_layers, info)
        self.base = base
        self.reference = ReferenceDetector(base.detector, bank, weight, SearchOptions(window=window))
        self.reference_ids = reference_ids

    def score(self, x: torch.Tensor, positions: torch.Tensor) -> DetectionResult:
        """Blended scores and maps, each slice compared with references of its own body level."""
        return self.reference.score(x, positions)
