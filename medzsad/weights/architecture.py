"""Which shipped architecture JSON gives a model's defaults (torch-free).

The architecture JSON (``medzsad/model/configs/*.json``) is the only default of the model settings
(backbone, image size, tapped layers, DPAM depth); a cohort's ``model`` keys and a command's
options are overrides, ``None`` unless given. This module names the JSON a model is built from:

1. the tiny test model: ``anomalyclip_tiny``;
2. a backbone override: the shipped architecture on that backbone (``ViT-B-16`` ->
   ``anomalyclip_vitb16``), when there is one;
3. registry prompt weights: the architecture they were trained with (``model_config`` metadata);
4. random (or no) prompt weights: :data:`DEFAULT_ARCHITECTURE`;
5. prompt weights from a file: ``None``, the configuration stored in the checkpoint decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medzsad.config import ModelConfig
from medzsad.errors import ModelError
from medzsad.model.config import AnomalyCLIPConfig, architecture_for_backbone, load_architecture
from medzsad.weights.registry import get_weight_entry
from medzsad.weights.resolution import RANDOM, is_registry_name

__all__ = [
    "DEFAULT_ARCHITECTURE",
    "TRAIN_ARCHITECTURE",
    "TINY_ARCHITECTURE",
    "ModelSettings",
    "default_architecture",
    "effective_settings",
]

#: Inference default: ViT-L/14@336 at 518 px, layer 24, DPAM on the last 19 blocks (upstream test.py).
DEFAULT_ARCHITECTURE = "anomalyclip_vitl14_336"
#: Training default: the paper's layers 6/12/18/24 (train.sh ``--features_list 6 12 18 24``).
TRAIN_ARCHITECTURE = "anomalyclip_vitl14_336_multilayer"
#: The tiny random test model.
TINY_ARCHITECTURE = "anomalyclip_tiny"


def default_architecture(
    *, prompts: str | None, backbone: str | None = None, tiny: bool = False
) -> str | None:
    """The shipped architecture whose JSON gives the defaults (rules in the module docstring).

    Args:
        prompts: Prompt weight name (registry name, file, ``random``) or None.
        backbone: open_clip backbone override, or None.
        tiny: The tiny test model.
    """
    if tiny:
        return TINY_ARCHITECTURE
    if backbone is not None:
        by_backbone = architecture_for_backbone(backbone)
        if by_backbone is not None:
            return by_backbone
    if prompts is None or prompts == RANDOM:
        return DEFAULT_ARCHITECTURE
    if is_registry_name(prompts):
        try:
            entry = get_weight_entry(prompts)
        except ModelError:
            return None  # reported where the weights are loaded
        return str(entry.metadata.get("model_config", DEFAULT_ARCHITECTURE))
    return None


@dataclass(frozen=True)
class ModelSettings:
    """The effective model settings: overrides where given, else the architecture's.

    Attributes:
        architecture: Shipped architecture name, or None when a prompt checkpoint file decides.
        backbone: open_clip backbone (None: the checkpoint's).
        image_size: Input side in pixels (None: the checkpoint's).
        feature_layers: Tapped 1-based vision blocks (None: the checkpoint's).
        dpam_layers: Final DPAM blocks (None: the checkpoint's).
    """

    architecture: str | None
    backbone: str | None
    image_size: int | None
    feature_layers: tuple[int, ...] | None
    dpam_layers: int | None


def effective_settings(
    *,
    prompts: str | None,
    backbone: str | None = None,
    image_size: int | None = None,
    feature_layers: tuple[int, ...] | None = None,
    dpam_layers: int | None = None,
    tiny: bool = False,
) -> ModelSettings:
    """Overrides filled from the architecture JSON (for the config hash and provenance).

    Raises:
        ModelError: The architecture JSON is missing or invalid.
    """
    arch = default_architecture(prompts=prompts, backbone=backbone, tiny=tiny)
    if arch is None:
        layers = tuple(feature_layers) if feature_layers is not None else None
        return ModelSettings(None, backbone, image_size, layers, dpam_layers)
    base: AnomalyCLIPConfig = load_architecture(arch)
    return ModelSettings(
        architecture=arch,
        backbone=backbone if backbone is not None else base.backbone,
        image_size=image_size if image_size is not None else base.image_size,
        feature_layers=tuple(feature_layers) if feature_layers is not None else base.feature_layers,
        dpam_layers=dpam_layers if dpam_layers is not None else base.dpam_layers,
    )


def effective_model_settings(model: ModelConfig) -> dict[str, Any]:
    """A cohort's ``model`` section as JSON with effective values (an override, else the architecture's).

    ``device`` and ``batch_size`` are left out: they never change a study's outputs. Used by the
    study config hash and the profile's model hash, so both see the same values.
    """
    data = model.model_dump(mode="json", exclude={"device", "batch_size"})
    eff = effective_settings(
        prompts=model.prompt_weights,
        backbone=model.backbone,
        image_size=model.image_size,
        feature_layers=model.feature_layers,
        dpam_layers=model.dpam_layers,
        tiny=model.tiny,
    )
    data.update(
        backbone=eff.backbone,
        image_size=eff.image_size,
        feature_layers=list(eff.feature_layers) if eff.feature_layers is not None else None,
        dpam_layers=eff.dpam_layers,
    )
    return data
