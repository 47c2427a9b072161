"""The model hash and pipeline hash a profile is valid for.

A profile's scores only mean something for the model and preprocessing that produced them, so a
review cohort may use a profile only when both hashes match.

- **model hash**: the effective ``model`` settings (backbone, weights names, image size, feature
  and DPAM layers with the architecture JSON's values where not overridden, precision, tiny, seed;
  not device or batch size) plus, for weights given as files, the file name and size.
- **pipeline hash**: the ``pipeline`` section, the content of the preset(s) it can use (every
  preset for ``auto``) and the study-score rule (it changes what a score is).

Both are independent of paths to the cohort or output folders, so a profile moves with its site.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medzsad.config import CohortConfig
from medzsad.preset_names import list_presets
from medzsad.transforms.preset import load_preset
from medzsad.weights.architecture import effective_model_settings

__all__ = ["model_hash", "pipeline_hash"]

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".json")


def _sha(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _weight_identity(config: CohortConfig, name: str) -> Any:
    """A weight name, with the file's name and size when it names a file (registry names are ids)."""
    if "/" not in name and "\\" not in name and Path(name).suffix not in _WEIGHT_SUFFIXES:
        return name
    p = config.resolve(name)
    return {"file": p.name, "size": p.stat().st_size if p.is_file() else None}


def model_hash(config: CohortConfig) -> str:
    """sha256 of the settings and weight identity that change a study's scores (see module doc)."""
    c = config.model
    m = effective_model_settings(c)  # the same effective values as the study config hash
    m["clip_weights"] = _weight_identity(config, c.clip_weights)
    m["prompt_weights"] = _weight_identity(config, c.prompt_weights)
    return _sha(m)


def _presets(name: str) -> dict[str, Any]:
    names = list_presets() if name == "auto" else [name]
    return {n: load_preset(n).model_dump(mode="json", exclude={"description"}) for n in names}


def pipeline_hash(config: CohortConfig) -> str:
    """sha256 of the preprocessing (section and preset content) and the study-score rule.

    Raises:
        ConfigError: The preset named in the cohort does not exist.
    """
    return _sha(
        {
            "pipeline": config.pipeline.model_dump(mode="json"),
            "presets": _presets(config.pipeline.preset),
            "study_score": config.output.study_score.model_dump(mode="json"),
        }
    )
