"""Prompt training on auxiliary data (AnomalyCLIP's "train once, test anywhere")."""

from medzsad.training.config import CACHE_MODES, TrainConfig
from medzsad.training.trainer import StepInfo, Trainer, TrainResult, batch_loss, make_optimizer, train_step

__all__ = [
    "CACHE_MODES",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "batch_loss",
    "make_optimizer",
    "train_step",
]
