"""medzsad: zero-shot anomaly detection for CT and MRI research cohorts (AnomalyCLIP on open_clip)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
