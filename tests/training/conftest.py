from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IMAGE_SIZE = 56


def write_texture_set(
    root: Path, n_normal: int = 8, n_defect: int = 8, size: int = IMAGE_SIZE, seed: int = 0
) -> Path:
    """Striped noisy textures; half get a pasted dark/bright patch with its mask (folder layout)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n_normal + n_defect):
        freq = rng.uniform(0.2, 0.4)
        phase = rng.uniform(0, 2 * np.pi)
        base = 0.5 + 0.25 * np.sin(freq * (xx + 0.3 * yy) + phase) + 0.05 * rng.standard_normal((size, size))
        img = np.repeat(base[..., None], 3, axis=2) * np.array([0.9, 0.8, 0.7])
        mask = np.zeros((size, size), dtype=np.uint8)
        if i >= n_normal:
            h, w = rng.integers(size // 5, size // 3, 2)
            r, c = rng.integers(0, size - h), rng.integers(0, size - w)
            mask[r : r + h, c : c + w] = 255
            colour = rng.choice([0.02, 0.98]) + 0.02 * rng.standard_normal(3)
            img[mask > 0] = colour
        arr = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        folder = "normal" if i < n_normal else "defect"
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / folder / f"{i:03d}.png")
        if i >= n_normal:
            (root / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(root / "masks" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def texture_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_texture_set(tmp_path_factory.mktemp("textures"))
