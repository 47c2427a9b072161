"""The model behind one small protocol: slices and their body positions in, scores and maps out.

:class:`SliceScorer` is what every scoring path needs (:mod:`medzsad.study.scoring`). Its
``score`` always takes the slices' positions (body coordinate and axis code): the zero-shot
:class:`ModelScorer` ignores them, the :class:`ReferenceScorer` compares each slice with reference
patches of its own axis and body level. A scorer describes the model that was built
(:class:`ScorerInfo`), which provenance, the review page and the SR state. Building a scorer from a
cohort's ``model`` section is :mod:`medzsad.study.build`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from medzsad.errors import ModelError
from medzsad.model.config import AnomalyCLIPConfig
from medzsad.model.inference import DetectionResult, Detector
from medzsad.model.reference_scoring import ReferenceDetector, SiteUnitsDetector
from medzsad.model.references import PatchBank, SearchOptions
from medzsad.model.site_units import NormalStats
from medzsad.study.types import AXES

__all__ = ["SliceScorer", "ScorerInfo", "ModelScorer", "ReferenceScorer", "describe_model"]

_ANY = "*"  # a single bank given for every axis


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
            positions: ``(B, 2)`` float32 slice positions: body coordinate in [0, 1] along the
                slice's axis and its axis code (:func:`medzsad.study.scoring.slice_positions`).

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
    """A :class:`ModelScorer` that compares each slice with few-shot normal references.

    Each slice is compared with the bank of its own axis (its axis code, column 1 of the slice
    positions) within its body-level window. Without statistics the map is the raw blend of
    issue 10, ``(1 - w) zero-shot + w distance``; with the site's statistics (``stats``) both terms
    are first expressed in units of the site's normal anatomy
    (:class:`~medzsad.model.reference_scoring.SiteUnitsDetector`).

    Args:
        base: The zero-shot scorer (its detector encodes the slices).
        bank: Reference bank built with the same model: one per axis name, or one for every axis.
        weight: ``w`` of the blend in [0, 1].
        window: Half-width of the body-coordinate window.
        reference_ids: Safe ids of the reference studies (provenance).
        stats: The site's statistics per axis name (maps in site units), or ``None``.
    """

    def __init__(
        self,
        base: ModelScorer,
        bank: PatchBank | Mapping[str, PatchBank],
        weight: float,
        window: float,
        reference_ids: tuple[str, ...] = (),
        stats: Mapping[str, NormalStats] | None = None,
    ) -> None:
        units = ", maps in site units" if stats is not None else ""
        info = ScorerInfo(
            f"{base.info.description} + {len(reference_ids)} normal references (w={weight:g}){units}",
            base.info.model_hash,
            {**base.info.weights, "references": list(reference_ids)},
            base.info.smoke,
            base.info.weight_names,
        )
        super().__init__(base.detector, base.n_layers, info)
        self.base = base
        self.reference_ids = reference_ids
        banks = {_ANY: bank} if isinstance(bank, PatchBank) else dict(bank)
        options = SearchOptions(window=window)
        self.by_axis: dict[str, ReferenceDetector | SiteUnitsDetector] = {}
        for axis, b in banks.items():
            if stats is None:
                self.by_axis[axis] = ReferenceDetector(base.detector, b, weight, options)
            elif axis not in stats:
                raise ModelError(f"no site statistics for the {axis} references: rebuild the profile")
            else:
                self.by_axis[axis] = SiteUnitsDetector(base.detector, b, stats[axis], weight, options)

    def _detector(self, code: int) -> ReferenceDetector | SiteUnitsDetector:
        axis = AXES[code] if 0 <= code < len(AXES) else str(code)
        found = self.by_axis.get(axis, self.by_axis.get(_ANY))
        if found is None:
            raise ModelError(
                f"the references hold banks for {sorted(self.by_axis)}, not for {axis} slices: rebuild "
                "the profile with this cohort's pipeline.axes"
            )
        return found

    def score(self, x: torch.Tensor, positions: torch.Tensor) -> DetectionResult:
        """Scores and maps, each slice compared with references of its own axis and body level.

        Args:
            x: ``(B, 3, S, S)`` float32, CLIP-normalised.
            positions: ``(B, 2)`` slice positions (body coordinate, axis code); ``(B,)`` body
                coordinates are read as axial slices (axis code 0).
        """
        coords = positions[:, 0] if positions.ndim == 2 else positions
        codes = (
            positions[:, 1].long() if positions.ndim == 2 else torch.zeros(len(positions), dtype=torch.long)
        )
        present = sorted(set(codes.tolist()))
        if len(present) == 1:
            return self._detector(present[0]).score(x, coords)
        scores = torch.empty(x.shape[0], dtype=torch.float32)
        maps = torch.empty((x.shape[0], self.image_size, self.image_size), dtype=torch.float32)
        for code in present:
            rows = torch.nonzero(codes == code).flatten()
            res = self._detector(code).score(x[rows], coords[rows])
            scores[rows], maps[rows] = res.image_scores, res.maps
        return DetectionResult(scores, maps, None)
