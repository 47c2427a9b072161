from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (20, 16), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if mode == "RGB":
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    else:
        arr = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def write_mask(
    path: Path, box: tuple[int, int, int, int] = (2, 2, 8, 8), size: tuple[int, int] = (20, 16)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0]), dtype=np.uint8)
    r0, c0, r1, c1 = box
    arr[r0:r1, c0:c1] = 255
    Image.fromarray(arr, mode="L").save(path)
    return path


@pytest.fixture
def files() -> SimpleNamespace:
    """``files.image(path, seed, size, mode)`` and ``files.mask(path, box, size)`` write tiny files."""
    return SimpleNamespace(image=write_image, mask=write_mask)
