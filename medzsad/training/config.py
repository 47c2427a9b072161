"""Typed settings of prompt training (defaults: the AnomalyCLIP reference ``train.py``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from medzsad.errors import ConfigError

__all__ = ["TrainConfig", "CACHE_MODES"]

#: Frozen-feature cache modes: ``auto`` caches in memory when it fits the budget and epochs > 1,
#: else on disk when epochs > 1, else not at all.
CACHE_MODES = ("auto", "memory", "disk", "none")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :class:`~medzsad.training.trainer.Trainer`.

    Attributes:
        epochs: passes over the data (15 in the reference).
        batch_size: images per step (8); the last batch of an epoch may be smaller.
        lr: Adam learning rate (1e-3).
        betas: Adam betas ((0.5, 0.999)).
        eps: Adam epsilon (1e-8).
        lam: weight of the pixel loss (4).
        seed: seed of the per-epoch shuffling (111 in the reference).
        shuffle: shuffle the images each epoch.
        checkpoint_every_steps: also save the training state every N steps (0: at epoch ends only).
        max_steps: stop (after saving the state) once this many steps are done in total; ``None``
            trains all epochs. A later run resumes from there.
        cache: frozen-feature cache mode, one of :data:`CACHE_MODES`.
        cache_memory_gib: largest in-memory cache ``auto`` will use.
        num_workers: data-loading worker processes.
        device: torch device string.
        progress: show a progress bar (``None``: only on a terminal).
    """

    epochs: int = 15
    batch_size: int = 8
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    lam: float = 4.0
    seed: int = 111
    shuffle: bool = True
    checkpoint_every_steps: int = 0
    max_steps: int | None = None
    cache: str = "auto"
    cache_memory_gib: float = 4.0
    num_workers: int = 0
    device: str = "cpu"
    progress: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        problems = []
        if self.epochs < 1 or self.batch_size < 1:
            problems.append(f"epochs={self.epochs} and batch_size={self.batch_size} must be >= 1")
        if self.lr <= 0 or not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            problems.append(f"lr={self.lr} must be > 0 and betas={self.betas} two values in [0, 1)")
        if self.checkpoint_every_steps < 0 or (self.max_steps is not None and self.max_steps < 1):
            problems.append(
                f"checkpoint_every_steps={self.checkpoint_every_steps} must be >= 0, "
                f"max_steps={self.max_steps} >= 1"
            )
        if self.cache not in CACHE_MODES:
            problems.append(f"cache={self.cache!r} must be one of {CACHE_MODES}")
        if problems:
            raise ConfigError("invalid training settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, rejecting unknown keys with a :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**data)

    def trajectory_key(self) -> dict[str, Any]:
        """Settings that must not change between a run and its resumption (they change the result)."""
        return {
            k: v
            for k, v in self.to_dict().items()
            if k in ("batch_size", "lr", "betas", "eps", "lam", "seed", "shuffle")
        }
