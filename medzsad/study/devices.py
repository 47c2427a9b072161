"""Which device a study's model runs on: ``auto`` resolved, a device asked for checked.

Torch is the only heavy import here, so a run can check its device before it loads any model or
writes anything (:mod:`medzsad.cohort.preflight`).
"""

from __future__ import annotations

import torch

from medzsad.errors import ModelError

__all__ = ["resolve_device"]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; other values are checked.

    Raises:
        ModelError: CUDA (or MPS) was asked for but is not available here.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(
            f"device {device!r} asked for but this machine has no usable CUDA GPU (torch "
            f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use --device cpu or auto"
        )
    if device.startswith("cuda") and ":" in device:
        index, count = int(device.split(":", 1)[1]), torch.cuda.device_count()
        if index >= count:
            raise ModelError(f"device {device!r} asked for but this machine has {count} CUDA GPU(s)")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelError("device 'mps' asked for but Apple's MPS is not available here; use --device cpu")
    return device
