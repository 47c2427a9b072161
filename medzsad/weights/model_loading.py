"""Build an AnomalyCLIP from weight names or files: the one loader for runs, training and evaluation.

Weights are only read from local files, the medzsad cache (:func:`medzsad.weights.cache.resolve`)
or the Hugging Face hub cache (``hf-hub:`` backbones, offline); nothing is downloaded here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from medzsad.errors import ModelError
from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.build import build_anomalyclip
from medzsad.model.config import AnomalyCLIPConfig, architecture_for_backbone, load_architecture
from medzsad.weights.architecture import DEFAULT_ARCHITECTURE, TRAIN_ARCHITECTURE
from medzsad.weights.manage import load_clip_weights, load_prompt_weights
from medzsad.weights.registry import DEFAULT_PROMPT_WEIGHTS, WeightKind, list_weight_entries
from medzsad.weights.resolution import RANDOM, ResolvedWeights, WeightSource, resolve

__all__ = ["ModelSpec", "RANDOM", "DEFAULT_ARCHITECTURE", "TRAIN_ARCHITECTURE", "load_anomalyclip"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """Which model to build.

    Attributes:
        prompts: prompt weights: a registry name (``anomalyclip_vitl14_336.mvtec``), a file (official
            ``.pth`` or medzsad ``.safetensors``/``.json``), a checkpoint folder, a name already
            resolved (:func:`medzsad.weights.resolution.resolve`), or ``None`` for freshly
            initialised prompts (training from scratch, smoke runs).
        clip: CLIP weights: a registry name, a file, an ``hf-hub:`` id, ``"random"``, a resolved
            name, or ``None`` for the registry's weights of the architecture's backbone.
        architecture: shipped architecture name; default the one stored with the prompts, else the
            registry entry's, else :data:`DEFAULT_ARCHITECTURE`.
        backbone: open_clip backbone override (e.g. ``ViT-B-16``); without ``architecture`` and a
            stored configuration, the shipped architecture on that backbone gives the defaults.
        image_size: input side override (multiple of the patch size).
        feature_layers: tapped 1-based vision blocks override.
        dpam_layers: number of final DPAM blocks override.
        seed: seed of random initialisation (prompts when ``prompts`` is ``None``; CLIP when random).
    """

    prompts: str | ResolvedWeights | None = DEFAULT_PROMPT_WEIGHTS
    clip: str | ResolvedWeights | None = None
    architecture: str | None = None
    backbone: str | None = None
    image_size: int | None = None
    feature_layers: tuple[int, ...] | None = None
    dpam_layers: int | None = None
    seed: int = 111


def _config(
    spec: ModelSpec, stored: dict[str, object] | None, registry_arch: str | None
) -> AnomalyCLIPConfig:
    if spec.architecture is not None:
        config = load_architecture(spec.architecture)
    elif stored:
        config = AnomalyCLIPConfig.from_dict(dict(stored))
    else:
        by_backbone = architecture_for_backbone(spec.backbone) if spec.backbone is not None else None
        config = load_architecture(by_backbone or registry_arch or DEFAULT_ARCHITECTURE)
    overrides: dict[str, object] = {}
    if spec.backbone is not None and spec.backbone != config.backbone:
        overrides.update(backbone=spec.backbone, clip_cfg=None)
    if spec.image_size is not None:
        overrides["image_size"] = int(spec.image_size)
    if spec.feature_layers is not None:
        overrides["feature_layers"] = tuple(int(i) for i in spec.feature_layers)
    if spec.dpam_layers is not None:
        overrides["dpam_layers"] = int(spec.dpam_layers)
    return config.with_overrides(**overrides) if overrides else config


def _clip_name_for(backbone: str) -> str:
    for e in list_weight_entries(WeightKind.CLIP):
        if e.architecture == backbone:
            return e.name
    raise ModelError(
        f"no registry CLIP weights for backbone {backbone!r}; "
        "pass --clip FILE (or --clip random for a smoke test)"
    )


def _build_from_hub(hub_id: str, config: AnomalyCLIPConfig, prompt_sd: dict | None, seed: int) -> AnomalyCLIP:
    import open_clip

    from medzsad.weights.clip_files import hf_hub_model, offline_hub

    hub = hf_hub_model(hub_id)
    with offline_hub(True):
        try:
            tokenizer = open_clip.get_tokenizer(hub_id)
        except (OSError, ValueError, RuntimeError) as e:
            raise ModelError(f"the tokenizer of {hub_id} is not in the Hugging Face cache: {e}") from e
    config = config.with_overrides(backbone=hub_id, clip_cfg=hub.model_cfg or None)
    return build_anomalyclip(config, None, prompt_sd, seed=seed, clip=hub.model, tokenizer=tokenizer)


def load_anomalyclip(spec: ModelSpec) -> AnomalyCLIP:
    """Build the model of ``spec`` (CPU, float32, eval mode).

    Raises:
        ModelError: unknown names, missing files (the message says how to get them), bad checkpoints.
    """
    prompt_sd = None
    stored_cfg: dict[str, object] | None = None
    registry_arch: str | None = None
    clip_name: str | None = None
    prompts = spec.prompts.name if isinstance(spec.prompts, ResolvedWeights) else spec.prompts
    if spec.prompts is not None and prompts != RANDOM:
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
    res = clip if isinstance(clip, ResolvedWeights) else resolve(clip, kind=WeightKind.CLIP)
    if res.source is WeightSource.RANDOM:
        logger.warning("building %s with RANDOM CLIP weights: for smoke tests only", config.backbone)
        return build_anomalyclip(config, None, prompt_sd, seed=spec.seed)
    if res.hub_id is not None:
        return _build_from_hub(res.hub_id, config, prompt_sd, spec.seed)
    clip_sd = load_clip_weights(res).state_dict
    return build_anomalyclip(config, clip_sd, prompt_sd, seed=spec.seed)
