"""Build an AnomalyCLIP from weight names or files, for training, evaluation and benchmarks.

Weights are only read from local files or the medzsad cache (:func:`medzsad.weights.cache.resolve`);
nothing is downloaded here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from medzsad.errors import ModelError
from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.build import build_anomalyclip
from medzsad.model.config import AnomalyCLIPConfig, load_architecture
from medzsad.weights.manage import load_clip_weights, load_prompt_weights
from medzsad.weights.registry import DEFAULT_PROMPT_WEIGHTS, WeightKind, list_weight_entries

__all__ = ["ModelSpec", "RANDOM", "DEFAULT_ARCHITECTURE", "load_anomalyclip"]

logger = logging.getLogger(__name__)

#: Use random weights (smoke tests with the tiny architecture; never for real results).
RANDOM = "random"
#: The paper's architecture (ViT-L/14@336 at 518 px, layers 6/12/18/24, DPAM on the last 19 blocks).
DEFAULT_ARCHITECTURE = "anomalyclip_vitl14_336_multilayer"


@dataclass(frozen=True)
class ModelSpec:
    """Which model to build.

    Attributes:
        prompts: prompt weights: a registry name (``anomalyclip_vitl14_336.mvtec``), a file (official
            ``.pth`` or medzsad ``.safetensors``/``.json``), a checkpoint folder, or ``None`` for
            freshly initialised prompts (training from scratch).
        clip: CLIP weights: a registry name, a file, ``"random"``, or ``None`` for the registry's
            OpenAI weights of the architecture's backbone.
        architecture: shipped architecture name; default the one stored with the prompts, else the
            registry entry's, else :data:`DEFAULT_ARCHITECTURE`.
        image_size: input side override (multiple of the patch size).
        seed: seed of random initialisation (prompts when ``prompts`` is ``None``; CLIP when random).
    """

    prompts: str | None = DEFAULT_PROMPT_WEIGHTS
    clip: str | None = None
    architecture: str | None = None
    image_size: int | None = None
    seed: int = 111


def _config(
    spec: ModelSpec, stored: dict[str, object] | None, registry_arch: str | None
) -> AnomalyCLIPConfig:
    if spec.architecture is not None:
        config = load_architecture(spec.architecture)
    elif stored:
        config = AnomalyCLIPConfig.from_dict(dict(stored))
    else:
        config = load_architecture(registry_arch or DEFAULT_ARCHITECTURE)
    if spec.image_size is not None:
        config = config.with_overrides(image_size=int(spec.image_size))
    return config


def _clip_name_for(backbone: str) -> str:
    for e in list_weight_entries(WeightKind.CLIP):
        if e.architecture == backbone:
            return e.name
    raise ModelError(
        f"no registry CLIP weights for backbone {backbone!r}; "
        "pass --clip FILE (or --clip random for a smoke test)"
    )


def load_anomalyclip(spec: ModelSpec) -> AnomalyCLIP:
    """Build the model of ``spec`` (CPU, float32, eval mode).

    Raises:
        ModelError: unknown names, missing files (the message says how to get them), bad checkpoints.
    """
    prompt_sd = None
    stored_cfg: dict[str, object] | None = None
    registry_arch: str | None = None
    clip_name: str | None = None
    if spec.prompts is not None:
        pw = load_prompt_weights(spec.prompts)
        prompt_sd = pw.state_dict
        if pw.entry is not None:
            registry_arch = str(pw.entry.metadata.get("model_config", DEFAULT_ARCHITECTURE))
            clip_name = (
                str(pw.entry.metadata["clip_weights"]) if "clip_weights" in pw.entry.metadata else None
            )
        else:
            stored_cfg = dict(pw.config) or None
    config = _config(spec, stored_cfg, registry_arch)
    clip = spec.clip if spec.clip is not None else (clip_name or _clip_name_for(config.backbone))
    if clip == RANDOM:
        logger.warning("building %s with RANDOM CLIP weights: for smoke tests only", config.backbone)
        clip_sd = None
    else:
        clip_sd = load_clip_weights(clip).state_dict
    return build_anomalyclip(config, clip_sd, prompt_sd, seed=spec.seed)
