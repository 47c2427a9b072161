"""The resumable training state: prompt parameters, Adam moments and progress, in one safetensors file.

Tensors (prompt parameters ``param.<name>``, Adam ``adam.<name>.exp_avg|exp_avg_sq|step``) are
stored with safetensors; the progress counters, loss accumulators, per-epoch history and settings
go into the file's metadata as JSON. Nothing is pickled, so loading runs no code, and the file is
written to a temporary name and renamed, so a kill never leaves a half-written state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from medzsad.errors import ModelError, OutputError
from medzsad.fileio import atomic_path

__all__ = ["TrainState", "save_train_state", "load_train_state", "optimizer_tensors", "restore_optimizer"]

logger = logging.getLogger(__name__)

STATE_FORMAT = "medzsad.train_state.v1"


@dataclass
class TrainState:
    """Progress of a training run.

    Attributes:
        global_step: optimiser steps done.
        epoch: index of the epoch in progress (0-based); equals the number of finished epochs
            when ``batch_in_epoch`` is 0.
        batch_in_epoch: batches of ``epoch`` already done.
        sums: running sums of the current epoch's losses (``pixel``, ``image``, ``total``, ``n``).
        history: one dict per finished epoch (the metrics CSV rows).
        settings: the trajectory-defining settings (checked on resume).
        model_config: the AnomalyCLIP configuration as a dict.
    """

    global_step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise the counters (floats round-trip exactly through ``repr``)."""
        return json.dumps(
            {
                "format": STATE_FORMAT,
                "global_step": self.global_step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "sums": self.sums,
                "history": self.history,
                "settings": self.settings,
                "model_config": self.model_config,
            }
        )

    @classmethod
    def from_json(cls, text: str, where: Path) -> TrainState:
        """Parse :meth:`to_json` output; ``where`` names the file in errors."""
        try:
            d = json.loads(text)
            if d.get("format") != STATE_FORMAT:
                raise ModelError(
                    f"{where}: training state format {d.get('format')!r}, expected {STATE_FORMAT!r}"
                )
            return cls(
                int(d["global_step"]),
                int(d["epoch"]),
                int(d["batch_in_epoch"]),
                {k: float(v) for k, v in d["sums"].items()},
                list(d["history"]),
                dict(d["settings"]),
                dict(d["model_config"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{where}: unreadable training state ({e!r}); delete it to start afresh") from e


def optimizer_tensors(optimizer: torch.optim.Optimizer, names: dict[int, str]) -> dict[str, torch.Tensor]:
    """Adam moments as flat named tensors.

    Args:
        optimizer: the optimiser (one parameter group).
        names: ``id(param)`` -> parameter name.
    """
    out: dict[str, torch.Tensor] = {}
    for p in optimizer.param_groups[0]["params"]:
        st = optimizer.state.get(p, {})
        for key, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
            out[f"adam.{names[id(p)]}.{key}"] = t.detach().cpu().contiguous()
    return out


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    named_params: dict[str, torch.nn.Parameter],
    tensors: dict[str, torch.Tensor],
) -> None:
    """Put the Adam moments of :func:`optimizer_tensors` back (on each parameter's device)."""
    for name, p in named_params.items():
        st = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.rsplit(".", 1)[0] == f"adam.{name}"}
        if st:
            optimizer.state[p] = {
                k: (v.to(p.device) if k != "step" else v.clone()) for k, v in sorted(st.items())
            }


def save_train_state(
    path: Path,
    state: TrainState,
    params: Mapping[str, torch.Tensor],
    optim: Mapping[str, torch.Tensor],
) -> None:
    """Write the state atomically.

    Args:
        path: target ``.safetensors`` file.
        state: counters and history.
        params: prompt parameters by name.
        optim: :func:`optimizer_tensors` output.

    Raises:
        OutputError: the file cannot be written.
    """
    tensors = {f"param.{k}": v.detach().cpu().contiguous() for k, v in params.items()}
    tensors.update(optim)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write training state {path}: {e}") from e
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"medzsad_train_state": state.to_json()})


def load_train_state(path: Path) -> tuple[TrainState, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Read a state written by :func:`save_train_state`.

    Returns:
        (state, prompt parameters by name, Adam tensors).

    Raises:
        ModelError: unreadable or foreign file.
    """
    path = Path(path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise ModelError(f"{path}: cannot read training state: {e}") from e
    if "medzsad_train_state" not in meta:
        raise ModelError(f"{path}: not a medzsad training state (no 'medzsad_train_state' metadata)")
    state = TrainState.from_json(meta["medzsad_train_state"], path)
    params = {k[len("param.") :]: v for k, v in tensors.items() if k.startswith("param.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("adam.")}
    return state, params, optim
