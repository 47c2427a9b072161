"""A tiny random-init AnomalyCLIP for tests and smoke runs (no weights, fast on CPU)."""

from __future__ import annotations

from medzsad.model.anomalyclip import AnomalyCLIP
from medzsad.model.build import build_anomalyclip
from medzsad.model.config import load_architecture

__all__ = ["tiny_anomalyclip"]


def tiny_anomalyclip(
    image_size: int = 112, seed: int = 0, feature_layers: tuple[int, ...] = (2, 4, 6, 8), dpam_layers: int = 6
) -> AnomalyCLIP:
    """A tiny AnomalyCLIP: ViT 8 blocks x 128 wide (patch 14), text 10 x 64, random weights.

    Built through open_clip's config mechanism from ``configs/anomalyclip_tiny.json``.

    Args:
        image_size: Input side (multiple of 14).
        seed: Seed of the random weights and prompts.
        feature_layers: 1-based tapped vision blocks (1..8).
        dpam_layers: Final blocks with DPAM (0..8).
    """
    config = load_architecture("anomalyclip_tiny").with_overrides(
        image_size=image_size, feature_layers=tuple(feature_layers), dpam_layers=dpam_layers
    )
    return build_anomalyclip(config, seed=seed)
