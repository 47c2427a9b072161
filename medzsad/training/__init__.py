"""Prompt training on auxiliary data (AnomalyCLIP's "train once, test anywhere").

Exports are resolved on first use (PEP 562): ``medzsad train --help`` reads the torch-free
:mod:`medzsad.training.config` without importing the trainer and torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CACHE_MODES": "config",
    "TrainConfig": "config",
    "StepInfo": "trainer",
    "Trainer": "trainer",
    "TrainResult": "trainer",
    "batch_loss": "trainer",
    "make_optimizer": "trainer",
    "train_step": "trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medzsad.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medzsad.training.{module}"), name)


def __dir__() -> list[str]:
    return __all__
