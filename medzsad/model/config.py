"""Typed configuration of an AnomalyCLIP detector (architecture and hyper-parameters, no weights).

Architectures live as JSON files in ``medzsad/model/configs/`` (one per ``arch`` name, the way
open_clip keeps ``model_configs/*.json``); weights are chosen separately (``medzsad.weights``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from typing import Any

from medzsad.errors import ModelError

__all__ = [
    "AnomalyCLIPConfig",
    "list_architectures",
    "load_architecture",
    "architecture_for_backbone",
    "check_image_size",
]


@dataclass(frozen=True)
class AnomalyCLIPConfig:
    """Hyper-parameters of AnomalyCLIP (arXiv 2310.18961) on an open_clip backbone.

    Attributes:
        backbone: open_clip model name (``ViT-L-14-336``) or the name of a JSON CLIP config in
            ``medzsad/model/configs/clip/`` (``tiny-vit``), or an ``hf-hub:`` id.
        clip_cfg: Inline open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``,
            ``quick_gelu``); overrides ``backbone`` lookup when given.
        quick_gelu: Use QuickGELU (OpenAI weights were trained with it).
        image_size: Input side in pixels; the positional embedding is resized once at build time.
        n_ctx: Learnable context tokens per prompt (``Prompt_length``).
        depth: Deep text prompt depth; ``depth - 1`` text blocks get deep prompts
            (``learnabel_text_embedding_depth``).
        t_n_ctx: Length of each deep text prompt (``learnabel_text_embedding_length``).
        dpam_layers: Number of final vision blocks using DPAM (reference ``DPAM_layer - 1``).
        feature_layers: 1-based vision block indices whose tokens give anomaly maps.
        temperature: Softmax temperature of the cosine similarities (0.07 in the reference).
        sigma: Gaussian smoothing of the summed map in pixels (scipy semantics).
        deep_prompt_fp16_cast: Round deep prompts through float16 as the reference does.
        normal_state: Text of the normal prompt after the context tokens.
        anomalous_state: Text of the anomalous prompt after the context tokens.
    """

    backbone: str = "ViT-L-14-336"
    clip_cfg: dict[str, Any] | None = None
    quick_gelu: bool = True
    image_size: int = 518
    n_ctx: int = 12
    depth: int = 9
    t_n_ctx: int = 4
    dpam_layers: int = 19
    feature_layers: tuple[int, ...] = (24,)
    temperature: float = 0.07
    sigma: float = 4.0
    deep_prompt_fp16_cast: bool = True
    normal_state: str = "object."
    anomalous_state: str = "damaged object."
    projection_dim: int = field(default=896)

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_layers", tuple(int(i) for i in self.feature_layers))
        problems = []
        if self.image_size <= 0:
            problems.append(f"image_size={self.image_size} must be > 0")
        if self.n_ctx <= 0 or self.t_n_ctx <= 0 or self.depth < 1:
            problems.append(f"n_ctx={self.n_ctx}, t_n_ctx={self.t_n_ctx}, depth={self.depth} must be >= 1")
        if self.t_n_ctx > self.n_ctx:
            problems.append(f"t_n_ctx={self.t_n_ctx} must not exceed n_ctx={self.n_ctx}")
        if self.dpam_layers < 0:
            problems.append(f"dpam_layers={self.dpam_layers} must be >= 0")
        if not self.feature_layers or min(self.feature_layers) < 1:
            problems.append(f"feature_layers={self.feature_layers} must be non-empty 1-based indices")
        if self.temperature <= 0 or self.sigma < 0:
            problems.append(f"temperature={self.temperature} must be > 0 and sigma={self.sigma} >= 0")
        if problems:
            raise ModelError("invalid AnomalyCLIP configuration: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        d["feature_layers"] = list(self.feature_layers)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnomalyCLIPConfig:
        """Build from a dict, rejecting unknown keys with a ``ModelError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"unknown AnomalyCLIP config keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    def with_overrides(self, **kwargs: Any) -> AnomalyCLIPConfig:
        """Copy with some fields replaced (validated again)."""
        return replace(self, **kwargs)


def _configs_dir() -> Any:
    return resources.files("medzsad.model").joinpath("configs")


def list_architectures() -> list[str]:
    """Names of the AnomalyCLIP architecture JSON files shipped with medzsad."""
    return sorted(p.name[:-5] for p in _configs_dir().iterdir() if p.name.endswith(".json"))


def load_architecture(name: str) -> AnomalyCLIPConfig:
    """Load a shipped architecture (``anomalyclip_vitl14_336``) as a config.

    Raises:
        ModelError: Unknown name (the message lists the known ones).
    """
    path = _configs_dir().joinpath(f"{name}.json")
    if not path.is_file():
        raise ModelError(f"unknown AnomalyCLIP architecture {name!r}; known: {list_architectures()}")
    return AnomalyCLIPConfig.from_dict(json.loads(path.read_text()))


def architecture_for_backbone(backbone: str) -> str | None:
    """The first shipped architecture (by name) built on ``backbone``, or None.

    ``ViT-B-16`` -> ``anomalyclip_vitb16``; the architecture JSON then gives that backbone's
    defaults (image size, tapped layers, DPAM depth) instead of another backbone's.
    """
    for name in list_architectures():
        data = json.loads(_configs_dir().joinpath(f"{name}.json").read_text())
        if data.get("backbone") == backbone:
            return name
    return None


def check_image_size(image_size: int, patch: int, backbone: str) -> None:
    """The one check of an input size: a positive multiple of the built backbone's patch size.

    Args:
        image_size: Requested input side in pixels.
        patch: Patch size of the vision tower actually built.
        backbone: Backbone name, for the message.

    Raises:
        ModelError: Not a positive multiple; the message names the two nearest valid sizes.
    """
    if image_size > 0 and image_size % patch == 0:
        return
    lower = max(patch, image_size // patch * patch)
    upper = lower + patch
    raise ModelError(
        f"image_size {image_size} is not a multiple of the {backbone} patch size {patch}; use "
        f"{lower} or {upper} (cohort model.image_size, --image-size), or leave it unset for the "
        "architecture's default"
    )
