"""The model hash and pipeline hash a profile is valid for.

A profile's scores only mean something for the model and preprocessing that produced them, so a
review cohort may use a profile only when both hashes match.

- **model hash**: the effective ``model`` settings (backbone, weights names, image size, feature
  and DPAM layers with the architecture JSON's values where not overridden, precision, tiny, seed;
  not device or batch size) plus, for weights given as files, the file name and size.
- **pipeline hash**: the effective preprocessing of the ``pipeline`` section (the preset(s) it can
  use, every preset for ``auto``, with its overrides applied:
  :func:`medzsad.transforms.pipeline_settings.effective_pipeline`, so a default written out hashes
  as one left absent) and the study-score rule (it changes what a score is).

Both are independent of paths to the cohort or output folders, so a profile moves with its site.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medzsad.config import CohortConfig
from medzsad.transforms.pipeline_settings import effective_pipeline
from medzsad.weights.architecture import effective_model_settings

__all__ = ["model_hash", "pipeline_hash", "model_settings", "pipeline_settings", "differences"]

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".json")


def _sha(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _weight_identity(config: CohortConfig, name: str) -> Any:
    """A weight name, with the file's name and size when it names a file (registry names are ids)."""
    if "/" not in name and "\\" not in name and Path(name).suffix not in _WEIGHT_SUFFIXES:
        return name
    p = config.resolve(name)
    return {"file": p.name, "size": p.stat().st_size if p.is_file() else None}


def model_settings(config: CohortConfig) -> dict[str, Any]:
    """The settings and weight identity the model hash covers (JSON-ready; a profile keeps them)."""
    c = config.model
    m = effective_model_settings(c)  # the same effective values as the study config hash
    m["clip_weights"] = _weight_identity(config, c.clip_weights)
    m["prompt_weights"] = _weight_identity(config, c.prompt_weights)
    return json.loads(json.dumps(m, default=str))


def model_hash(config: CohortConfig) -> str:
    """sha256 of the settings and weight identity that change a study's scores (see module doc)."""
    return _sha(model_settings(config))


def pipeline_hash(config: CohortConfig) -> str:
    """sha256 of the preprocessing (section and preset content) and the study-score rule.

    Raises:
        ConfigError: The preset named in the cohort does not exist.
    """
    return _sha(pipeline_settings(config))


def pipeline_settings(config: CohortConfig) -> dict[str, Any]:
    """What the pipeline hash covers (JSON-ready; a profile keeps it).

    Raises:
        ConfigError: The preset named in the cohort does not exist.
    """
    return {
        "pipeline": effective_pipeline(config.pipeline),
        "study_score": config.output.study_score.model_dump(mode="json"),
    }


def differences(ours: Any, theirs: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, ours, theirs)`` for every value that differs between two JSON-ready settings.

    ``differences({"a": {"b": 1}}, {"a": {"b": 2}})`` is ``[("a.b", 1, 2)]``.
    """
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(ours) | set(theirs), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            out += differences(ours.get(key), theirs.get(key), name)
        return out
    return [] if ours == theirs else [(prefix, ours, theirs)]
