"""provenance.json: what produced a study's outputs (inputs, config and model hashes, versions, timings)."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

__all__ = ["package_versions", "build_provenance"]

_PACKAGES = (
    "medzsad", "torch", "open_clip_torch", "monai", "numpy", "pydicom",
    "nibabel", "SimpleITK", "scipy", "scikit-image",
)  # fmt: skip


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the outputs (``"not installed"`` if absent)."""
    out: dict[str, str] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_provenance(
    *,
    study: dict[str, Any],
    inputs: dict[str, Any],
    config: dict[str, Any],
    hashes: dict[str, str],
    model: dict[str, Any],
    timings_s: dict[str, float],
    smoke: bool,
) -> dict[str, Any]:
    """Assemble the provenance record (a JSON-ready dict).

    Args:
        study: Safe id, hashed id and chosen series.
        inputs: Source files, UIDs, modality, shape and affine of the source.
        config: The cohort config as JSON (``model_dump(mode="json")``).
        hashes: ``input_hash``, ``config_hash`` and ``model_hash``.
        model: Backbone, weights names/paths and their sha256 where known.
        timings_s: Seconds per stage.
        smoke: Whether random weights were used.
    """
    return {
        "format": "medzsad-provenance/1",
        "smoke_run": smoke,
        "note": "SMOKE RUN - random weights; scores are meaningless" if smoke else "",
        "study": study,
        "inputs": inputs,
        "hashes": hashes,
        "model": model,
        "config": config,
        "versions": package_versions(),
        "timings_s": {k: round(float(v), 4) for k, v in timings_s.items()},
    }
