"""The model behind a small protocol: batches of slices in, image scores and maps out.

:class:`SliceScorer` is what the runner needs; :func:`build_scorer` makes one from the cohort's
``model`` section (registry weights through :mod:`medzsad.weights`, files, or random weights for
smoke runs). Tests inject their own scorer.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from medzsad.config import CohortConfig
from medzsad.errors import ModelError
from medzsad.model.inference import DetectionResult, Detector

__all__ = ["SliceScorer", "ScorerInfo", "ModelScorer", "build_scorer", "resolve_device"]

log = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".json")


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


def _file_identity(name: str, path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"name": name, "path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _weight_file(name: str, config: CohortConfig) -> Path | None:
    """A weight name -> the file it reads, or ``None`` for ``random``/``hf-hub:`` ids.

    Names with a path separator or a weight-file suffix are files, relative to the cohort file.
    """
    if name == "random" or name.startswith("hf-hub:"):
        return None
    looks_like_path = "/" in name or "\\" in name or Path(name).suffix in _WEIGHT_SUFFIXES
    if looks_like_path:
        p = config.resolve(name)
        if not p.exists():
            raise ModelError(f"{config.source_file}: weight file {p} does not exist (model section)")
        return p
    from medzsad.weights.cache import resolve
    from medzsad.weights.registry import FileFormat, get_weight_entry

    if get_weight_entry(name).file_format is FileFormat.HF_HUB:
        return None
    return resolve(name)


def _weight_files(config: CohortConfig, *names: str) -> list[Path | None]:
    """:func:`_weight_file` of each name; every missing file is reported in one error, not one per run."""
    found: list[Path | None] = []
    problems: list[str] = []
    for name in names:
        try:
            found.append(_weight_file(name, config))
        except ModelError as e:
            found.append(None)
            problems.append(str(e))
    if problems:
        raise ModelError("\n".join(problems))
    return found


def _spec_name(name: str, path: Path | None) -> str:
    return str(path) if path is not None and not _is_registry_name(name) else name


def _is_registry_name(name: str) -> bool:
    return not ("/" in name or "\\" in name or Path(name).suffix in _WEIGHT_SUFFIXES)


def _build_model(config: CohortConfig) -> tuple[Any, ScorerInfo]:
    m = config.model
    if m.tiny:
        from medzsad.model.tiny import tiny_anomalyclip

        model = tiny_anomalyclip(m.image_size, m.seed, tuple(m.feature_layers), m.dpam_layers)
        arch = {"tiny": True, **model.config.to_dict()}
        desc = "tiny random AnomalyCLIP (SMOKE RUN - random weights)"
        weights: dict[str, Any] = {"clip": "random", "prompts": "random", "seed": m.seed}
    else:
        from medzsad.weights.model_loading import ModelSpec, load_anomalyclip

        clip_path, prompt_path = _weight_files(config, m.clip_weights, m.prompt_weights)
        weights = {"seed": m.seed}
        for key, name, path in (
            ("clip", m.clip_weights, clip_path),
            ("prompts", m.prompt_weights, prompt_path),
        ):
            weights[key] = _file_identity(name, path) if path is not None else name
        spec = ModelSpec(
            prompts=_spec_name(m.prompt_weights, prompt_path),
            clip=_spec_name(m.clip_weights, clip_path),
            architecture="anomalyclip_vitl14_336" if m.backbone == "ViT-L-14-336" else None,
            backbone=m.backbone,
            image_size=m.image_size,
            feature_layers=tuple(m.feature_layers),
            dpam_layers=m.dpam_layers,
            seed=m.seed,
        )
        model = load_anomalyclip(spec)
        arch = model.config.to_dict()
        desc = f"AnomalyCLIP {m.backbone} clip={m.clip_weights} prompts={m.prompt_weights}"
    payload = json.dumps({"arch": arch, "weights": weights}, sort_keys=True, default=str)
    info = ScorerInfo(desc, hashlib.sha256(payload.encode()).hexdigest(), weights, m.is_smoke)
    return model, info


def build_scorer(config: CohortConfig) -> ModelScorer:
    """Build the detector of a cohort's ``model`` section on its device.

    Raises:
        ModelError: Weights missing (with the ``medzsad weights`` command to fix it), bad
            architecture, or unavailable device.
    """
    device = resolve_device(config.model.device)
    model, info = _build_model(config)
    detector = Detector(
        model, device=device, precision=config.model.precision, compile=config.model.compile
    )
    log.info("model: %s on %s (%s)", info.description, device, config.model.precision)
    return ModelScorer(detector, len(config.model.feature_layers), info)
