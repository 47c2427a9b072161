from __future__ import annotations

import numpy as np
import pytest
import torch

from medzsad.cohort.metrics import aupro_volumes
from medzsad.cohort.slicing import _from_model, _to_model
from medzsad.cohort.stages import SliceScores, study_score
from medzsad.config import StudyScoreRule
from medzsad.eval.metrics import aupro
from medzsad.report.overlay import display_orientation, from_display, to_display


def test_aupro_volumes_equals_reference_aupro_on_images():
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 32, 32), dtype=bool)
    masks[1, 5:12, 5:12] = True
    masks[2, 20:30, 3:9] = True
    masks[2, 2:5, 25:30] = True
    maps = rng.random((4, 32, 32)) + masks * 0.6
    assert aupro_volumes(list(masks), list(maps)) == pytest.approx(aupro(masks, maps), abs=1e-12)
    assert np.isnan(aupro_volumes([np.zeros((3, 3, 3))], [np.ones((3, 3, 3))]))


def test_aupro_volumes_3d_region_counts_once():
    mask = np.zeros((6, 6, 6), dtype=bool)
    mask[2:4, 2:4, 1:5] = True  # one 3D region spanning 4 slices
    rng = np.random.default_rng(2)
    separated = mask + 0.5 * rng.random(mask.shape)  # every lesion voxel above every normal voxel
    assert aupro_volumes([mask], [separated]) == pytest.approx(1.0)
    # one 3D region: 9 voxels in slice 1 (detected) + a 3-voxel stalk in slices 2-4 (missed).
    # 3D PRO = 9/12 = 0.75; a per-slice definition would give (1 + 0 + 0 + 0) / 4 = 0.25.
    lesion = np.zeros((6, 6, 6), dtype=bool)
    lesion[2:5, 2:5, 1] = True
    lesion[3, 3, 2:5] = True
    part = np.where(lesion, 0.0, 0.5 * rng.random(lesion.shape))
    part[2:5, 2:5, 1] = 1.0
    assert aupro_volumes([lesion], [part]) == pytest.approx(0.75, abs=0.01)


def test_study_score_rules():
    s = SliceScores(np.array([0.1, 0.9, 0.5, 0.7], dtype=np.float32), np.zeros((4, 2, 2), np.float32))
    heat = np.full((2, 2, 4), 0.3, dtype=np.float32)
    assert study_score(s, heat, StudyScoreRule()) == pytest.approx(0.9)
    assert study_score(s, heat, StudyScoreRule(method="topk_mean", k=2)) == pytest.approx(0.8)
    assert study_score(s, heat, StudyScoreRule(method="max_map")) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "affine", [np.eye(4), np.diag([-1.0, -1.0, 1.0, 1.0]), np.diag([1.0, -1.0, 1.0, 1.0])]
)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_display_orientation_roundtrip(affine, axis):
    stack = np.random.default_rng(1).random((3, 5, 7))
    o = display_orientation(affine, axis)
    np.testing.assert_array_equal(from_display(to_display(stack, o), o), stack)


def test_model_resize_roundtrip_keeps_shape_and_constant_maps():
    slices = np.full((2, 20, 30), 0.5, dtype=np.float32)
    x = _to_model(slices, 28, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert x.shape == (2, 3, 28, 28) and x.dtype == torch.float32
    back = _from_model(np.full((2, 28, 28), 0.25, dtype=np.float32), (20, 30))
    assert back.shape == (2, 20, 30)
    np.testing.assert_allclose(back, 0.25, atol=1e-6)
