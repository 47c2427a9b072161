"""A tiny random-init AnomalyCLIP for tests and smoke runs (no weights, fast on CPU)."""

from __future__ import annotations

from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.build import build_anomalyclip
from medzsad.model.config import load_architecture

__all__ = ["tiny_anomalyclip"]


def tiny_anomalyclip(
    image_size: int | None = None,
    seed: int = 0,
    feature_layers: tuple[int, ...] | None = None,
    dpam_layers: int | None = None,
) -> AnomalyCLIP:
    """A tiny AnomalyCLIP: ViT 8 blocks x 128 wide (patch 14), text 10 x 64, random weights.

    Built through open_clip's config mechanism from ``configs/anomalyclip_tiny.json``.

    Args:
        image_size: Input side (multiple of 14); None keeps the JSON's (112).
        seed: Seed of the random weights and prompts.
        feature_layers: 1-based tapped vision blocks (1..8); None keeps the JSON's (2, 4, 6, 8).
        dpam_layers: Final blocks with DPAM (0..8); None keeps the JSON's (6).
    """
    overrides: dict[str, object] = {}
    if image_size is not None:
        overrides["image_size"] = image_size
    if feature_layers is not None:
        overrides["feature_layers"] = tuple(feature_layers)
    if dpam_layers is not None:
        overrides["dpam_layers"] = dpam_layers
    config = load_architecture("anomalyclip_tiny").with_overrides(**overrides)
    return build_anomalyclip(config, seed=seed)
