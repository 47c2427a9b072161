"""Weights: the registry of known files, the local cache, fetch/import, and checkpoint readers.

``medzsad.weights`` reads files and the registry and returns state dicts plus metadata;
``medzsad.model`` builds networks from what it is handed. The registry
(:mod:`medzsad.weights.registry`) imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# Exports are resolved on first use (PEP 562) so that importing the torch-free registry, e.g. for
# ``medzsad weights list``, does not pull in torch and open_clip.
_EXPORTS = {
    "DEFAULT_CLIP_WEIGHTS": "registry",
    "DEFAULT_PROMPT_WEIGHTS": "registry",
    "WeightEntry": "registry",
    "get_weight_entry": "registry",
    "list_weight_entries": "registry",
    "medzsad_home": "cache",
    "resolve": "resolution",
    "ResolvedWeights": "resolution",
    "WeightSource": "resolution",
    "StoredWeights": "import_file",
    "import_weights": "import_file",
    "fetch_weights": "fetch",
    "CacheStatus": "manage",
    "ClipWeights": "manage",
    "PromptWeights": "manage",
    "WeightStatus": "manage",
    "list_weights": "manage",
    "load_clip_weights": "manage",
    "load_prompt_weights": "manage",
    "weights_path": "manage",
    "PromptCheckpoint": "prompt_checkpoint",
    "load_prompt_checkpoint": "prompt_checkpoint",
    "read_official_prompt_checkpoint": "prompt_checkpoint",
    "save_prompt_checkpoint": "prompt_checkpoint",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medzsad.weights' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medzsad.weights.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_CLIP_WEIGHTS",
    "DEFAULT_PROMPT_WEIGHTS",
    "CacheStatus",
    "ClipWeights",
    "PromptCheckpoint",
    "PromptWeights",
    "ResolvedWeights",
    "StoredWeights",
    "WeightEntry",
    "WeightSource",
    "WeightStatus",
    "fetch_weights",
    "get_weight_entry",
    "import_weights",
    "list_weight_entries",
    "list_weights",
    "load_clip_weights",
    "load_prompt_checkpoint",
    "load_prompt_weights",
    "medzsad_home",
    "read_official_prompt_checkpoint",
    "resolve",
    "save_prompt_checkpoint",
    "weights_path",
]
