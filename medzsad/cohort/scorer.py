"""The model behind a small protocol: batches of slices in, image scores and maps out.

:class:`SliceScorer` is what the runner needs; :func:`build_scorer` makes one from the cohort's
``model`` section: the weight names are resolved once (:func:`medzsad.weights.resolution.resolve`),
the architecture JSON gives every setting the cohort does not override
(:mod:`medzsad.weights.architecture`), and the number of summed layers is read from the built
model. Tests inject their own scorer.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from medzsad.config import CohortConfig
from medzsad.errors import ModelError
from medzsad.model.inference import DetectionResult, Detector

if TYPE_CHECKING:
    from medzsad.model.anomalyclip import AnomalyCLIP
    from medzsad.weights.resolution import ResolvedWeights

__all__ = [
    "ModelInputSpec",
    "InputSpec",
    "SliceScorer",
    "ScorerInfo",
    "ModelScorer",
    "build_scorer",
    "build_model_scorer",
    "resolve_device",
]

log = logging.getLogger(__name__)


class ModelInputSpec(Protocol):
    """What preprocessing needs to know of the model: input side and CLIP normalisation."""

    @property
    def image_size(self) -> int:
        """Input side ``S``."""
        ...

    @property
    def mean(self) -> tuple[float, float, float]:
        """CLIP normalisation mean."""
        ...

    @property
    def std(self) -> tuple[float, float, float]:
        """CLIP normalisation std."""
        ...


@dataclass(frozen=True)
class InputSpec:
    """A picklable :class:`ModelInputSpec` (sent to the worker processes instead of the model)."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, scorer: ModelInputSpec) -> InputSpec:
        """The input spec of ``scorer``."""
        return cls(int(scorer.image_size), tuple(scorer.mean), tuple(scorer.std))  # type: ignore[arg-type]


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

    def score(self, x: torch.Tensor) -> DetectionResult:
        """``x`` ``(B, 3, S, S)`` float32 CLIP-normalised -> scores ``(B,)`` in [0, 1], maps ``(B, S, S)``."""
        ...


@dataclass(frozen=True)
class ScorerInfo:
    """What the model is, for provenance and the config hash.

    Attributes:
        description: Human-readable model description.
        model_hash: sha256 of the architecture and the identity of the weight files.
        weights: Name, path, size of each weight file.
        smoke: Random weights (outputs are labelled as a smoke run).
    """

    description: str
    model_hash: str
    weights: dict[str, Any] = field(default_factory=dict)
    smoke: bool = False


class ModelScorer:
    """A :class:`Detector` as a :class:`SliceScorer`."""

    def __init__(self, detector: Detector, n_layers: int, info: ScorerInfo) -> None:
        self.detector = detector
        self.image_size = detector.image_size
        self.n_layers = n_layers
        self.mean = detector.mean
        self.std = detector.std
        self.info = info

    def score(self, x: torch.Tensor) -> DetectionResult:
        """See :meth:`SliceScorer.score`."""
        return self.detector.score(x)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; other values are checked.

    Raises:
        ModelError: CUDA was asked for but is not available.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
    return device


def _resolve_weights(config: CohortConfig) -> tuple[ResolvedWeights, ResolvedWeights]:
    """Resolve both weight names once (files relative to the cohort file); every problem in one error."""
    from medzsad.weights.registry import WeightKind
    from medzsad.weights.resolution import resolve

    m = config.model
    found: list[ResolvedWeights] = []
    problems: list[str] = []
    for name, kind in ((m.clip_weights, WeightKind.CLIP), (m.prompt_weights, WeightKind.PROMPT)):
        try:
            found.append(resolve(name, config.base_dir, kind=kind))
        except ModelError as e:
            problems.append(f"{config.source_file}: model: {e}")
    if problems:
        raise ModelError("\n".join(problems))
    return found[0], found[1]


def _build_model(config: CohortConfig) -> tuple[AnomalyCLIP, ScorerInfo]:
    from medzsad.weights.architecture import default_architecture
    from medzsad.weights.model_loading import ModelSpec, load_anomalyclip

    m = config.model
    clip, prompts = _resolve_weights(config)
    spec = ModelSpec(
        prompts=prompts,
        clip=clip,
        architecture=default_architecture(prompts=m.prompt_weights, backbone=m.backbone, tiny=m.tiny),
        backbone=m.backbone,
        image_size=m.image_size,
        feature_layers=m.feature_layers,
        dpam_layers=m.dpam_layers,
        seed=m.seed,
    )
    try:
        model = load_anomalyclip(spec)
    except ModelError as e:
        raise ModelError(f"{config.source_file}: model: {e}") from e
    weights: dict[str, Any] = {"clip": clip.describe(), "prompts": prompts.describe(), "seed": m.seed}
    arch = {"tiny": True, **model.config.to_dict()} if m.tiny else model.config.to_dict()
    if m.tiny:
        desc = "tiny random AnomalyCLIP (SMOKE RUN - random weights)"
    else:
        desc = f"AnomalyCLIP {model.config.backbone} clip={m.clip_weights} prompts={m.prompt_weights}"
    payload = json.dumps({"arch": arch, "weights": weights}, sort_keys=True, default=str)
    info = ScorerInfo(desc, hashlib.sha256(payload.encode()).hexdigest(), weights, m.is_smoke)
    return model, info


def build_scorer(config: CohortConfig) -> ModelScorer:
    """Build the detector of a cohort's ``model`` section on its device.

    With ``model.references: true`` the scorer blends in the reference bank of the cohort's profile
    (:func:`medzsad.references.profile_refs.load_review_references`).

    Raises:
        ModelError: Weights missing (with the ``medzsad weights`` command to fix it), bad
            architecture, or unavailable device.
        ConfigError: ``model.references`` without a profile built with references.
    """
    scorer = build_model_scorer(config)
    if not config.model.references:
        return scorer
    from medzsad.references.profile_refs import load_review_references

    return load_review_references(config, scorer)


def build_model_scorer(config: CohortConfig) -> ModelScorer:
    """The zero-shot scorer of a cohort's ``model`` section (references not applied).

    Raises:
        ModelError: See :func:`build_scorer`.
    """
    device = resolve_device(config.model.device)
    model, info = _build_model(config)
    detector = Detector(model, device=device, precision=config.model.precision, compile=config.model.compile)
    log.info("model: %s on %s (%s)", info.description, device, config.model.precision)
    return ModelScorer(detector, len(model.config.feature_layers), info)
