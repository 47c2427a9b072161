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

from medzsad.config import CohortConfig, ModelConfig
from medzsad.errors import ModelError
from medzsad.model.inference import DetectionResult, Detector

__all__ = ["SliceScorer", "ScorerInfo", "ModelScorer", "build_scorer", "resolve_device"]

log = logging.getLogger(__name__)


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


def _weight_file(name: str, config: CohortConfig) -> tuple[Path, bool]:
    """A weight name -> (file, from_registry). Paths (with / or a suffix) resolve against the cohort file."""
    looks_like_path = (
        "/" in name or "\\" in name or Path(name).suffix in (".pt", ".pth", ".bin", ".safetensors")
    )
    if looks_like_path:
        p = config.resolve(name)
        if not p.exists():
            raise ModelError(f"{config.source_file}: weight file {p} does not exist (model section)")
        return p, False
    from medzsad.weights.cache import resolve

    return resolve(name), True


def _architecture(m: ModelConfig) -> Any:
    from medzsad.model.config import AnomalyCLIPConfig, load_architecture

    base = (
        load_architecture("anomalyclip_vitl14_336") if m.backbone == "ViT-L-14-336" else AnomalyCLIPConfig()
    )
    return base.with_overrides(
        backbone=m.backbone,
        image_size=m.image_size,
        feature_layers=tuple(m.feature_layers),
        dpam_layers=m.dpam_layers,
    )


def _build_model(config: CohortConfig) -> tuple[Any, ScorerInfo]:
    m = config.model
    if m.tiny:
        from medzsad.model.tiny import tiny_anomalyclip

        model = tiny_anomalyclip(m.image_size, m.seed, tuple(m.feature_layers), m.dpam_layers)
        arch = {"tiny": True, **model.config.to_dict()}
        desc = "tiny random AnomalyCLIP (SMOKE RUN - random weights)"
        weights: dict[str, Any] = {"clip": "random", "prompts": "random", "seed": m.seed}
    else:
        from medzsad.model.build import build_anomalyclip

        arch_cfg = _architecture(m)
        arch = arch_cfg.to_dict()
        weights = {}
        clip_sd = prompt_sd = None
        if m.clip_weights != "random":
            from medzsad.weights.clip_files import read_clip_state_dict

            path, _ = _weight_file(m.clip_weights, config)
            weights["clip"] = _file_identity(m.clip_weights, path)
            clip_sd = read_clip_state_dict(path)
        if m.prompt_weights != "random":
            from medzsad.weights.prompt_checkpoint import read_prompt_weights

            path, _ = _weight_file(m.prompt_weights, config)
            ckpt = read_prompt_weights(path)
            weights["prompts"] = {**_file_identity(m.prompt_weights, path), "sha256": ckpt.sha256}
            prompt_sd = ckpt.state_dict
        model = build_anomalyclip(arch_cfg, clip_sd, prompt_sd, seed=m.seed)
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
    detector = Detector(model, device=device, precision=config.model.precision)
    log.info("model: %s on %s (%s)", info.description, device, config.model.precision)
    return ModelScorer(detector, len(config.model.feature_layers), info)
