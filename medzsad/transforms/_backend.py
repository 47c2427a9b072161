"""numpy/torch helpers shared by the array transforms (each transform accepts either)."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import torch

ArrayLike: TypeAlias = np.ndarray | torch.Tensor

__all__ = ["ArrayLike", "as_float32", "to_numpy"]


def as_float32(x: ArrayLike) -> ArrayLike:
    """``x`` as float32 in its own library (numpy stays numpy, torch stays torch on its device)."""
    if isinstance(x, torch.Tensor):
        return x.to(torch.float32)
    return np.asarray(x, dtype=np.float32)


def to_numpy(x: ArrayLike) -> np.ndarray:
    """A numpy view/copy of ``x`` (CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
