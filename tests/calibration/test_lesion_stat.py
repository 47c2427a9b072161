"""The lesion statistic equals the largest threshold at which find_lesions keeps a lesion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medzsad.analysis.lesions import find_lesions, voxel_volume_ml
from medzsad.calibration.lesion_stat import lesion_statistic, min_lesion_voxels


def _reference(heat: np.ndarray, voxel_ml: float, min_ml: float) -> float:
    """Bisection over the distinct values with full ndimage labelling (independent of the fast path)."""
    h = heat.astype(np.float32)
    values = np.unique(h)[::-1]  # descending

    def lesion(t: np.float32) -> bool:
        comp, n = ndimage.label(h >= t, structure=np.ones((3, 3, 3), bool))
        return bool(n) and bool((np.bincount(comp.ravel())[1:] * voxel_ml >= min_ml).any())

    if not lesion(values[-1]):
        return 0.0
    lo, hi = -1, len(values) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if lesion(values[mid]) else (mid, hi)
    return float(values[hi])


def _heat(seed: int, shape: tuple[int, int, int], sigma: float, decimals: int | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = ndimage.gaussian_filter(rng.random(shape), sigma)
    h = (h - h.min()) / (h.max() - h.min())
    return (np.round(h, decimals) if decimals is not None else h).astype(np.float32)


@pytest.mark.parametrize("seed", range(12))
def test_matches_find_lesions_and_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    shape = (int(rng.integers(4, 24)), int(rng.integers(4, 24)), int(rng.integers(1, 9)))
    heat = _heat(seed, shape, float(rng.choice([0.7, 1.5])), [None, 2][seed % 2])
    affine = np.diag([1.0, 1.2, 2.0, 1.0])
    vox = voxel_volume_ml(affine)
    min_ml = float(rng.choice([0.0, vox * 3, vox * 3.5, 0.05]))
    stat = lesion_statistic(heat, vox, min_ml)
    assert stat == _reference(heat, vox, min_ml)
    if heat.size * vox >= min_ml:
        assert len(find_lesions(heat, affine, stat, min_ml).lesions) >= 1
    above = float(np.nextafter(np.float32(stat), np.float32(2)))
    assert len(find_lesions(heat, affine, above, min_ml).lesions) == 0


def test_deep_search_grows_past_the_first_top_block() -> None:
    # fine noise: many small blobs before one reaches 800 voxels (past the first 8 x 800 values)
    heat = _heat(7, (60, 60, 20), 0.6, None)
    stat = lesion_statistic(heat, 0.001, 0.8)
    assert int(np.sum(heat >= stat)) > 8 * 800
    assert stat == _reference(heat, 0.001, 0.8)


def test_min_lesion_voxels_uses_the_mask_writer_comparison() -> None:
    assert min_lesion_voxels(0.001, 0.0) == 1
    assert min_lesion_voxels(0.001, 0.003) == 3
    assert min_lesion_voxels(0.001, 0.0031) == 4
    assert min_lesion_voxels(0.1, 0.3) == 3  # 3 * 0.1 == 0.30000000000000004 >= 0.3


def test_volume_smaller_than_a_lesion_gives_zero_and_no_lesion_anywhere() -> None:
    heat = np.full((2, 2, 1), 0.9, np.float32)
    assert lesion_statistic(heat, 0.001, 1.0) == 0.0
    assert len(find_lesions(heat, np.eye(4), 0.0, 1.0).lesions) == 0
