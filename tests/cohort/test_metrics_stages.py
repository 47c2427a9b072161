from __future__ import annotations

import numpy as np
import pytest

from medzsad.analysis.metrics import aupro_regions
from medzsad.config import StudyScoreRule
from medzsad.report.overlay import display_orientation, from_display, to_display
from medzsad.study.postprocess import SliceScores, study_score
from medzsad.study.reading import choose_preset
from medzsad.transforms.preset import guess_modality


def test_aupro_regions_of_differently_shaped_volumes_pools_their_regions():
    """Volumes of different shapes pool regions and normal voxels (the cohort's voxel AUPRO)."""
    a_mask = np.zeros((5, 6, 7), dtype=bool)
    a_mask[1:3, 1:3, 1:3] = True
    b_mask = np.zeros((4, 4, 9), dtype=bool)
    b_mask[0:2, 0:2, 5:8] = True
    rng = np.random.default_rng(4)
    noise_a, noise_b = 0.5 * rng.random(a_mask.shape), 0.5 * rng.random(b_mask.shape)
    perfect = [a_mask + noise_a, b_mask + noise_b]  # every lesion voxel above every normal voxel
    assert aupro_regions([a_mask, b_mask], perfect) == pytest.approx(1.0)
    # b's lesion scored like its background: that region's overlap only grows with the FPR
    # (PRO_b ~ FPR), so the normalised area is about (1 + 0.15) / 2
    half = [a_mask + noise_a, noise_b]
    assert 0.5 < aupro_regions([a_mask, b_mask], half) < 0.65
    assert np.isnan(aupro_regions([np.zeros((3, 3, 3))], [np.ones((3, 3, 3))]))
    with pytest.raises(ValueError, match="same shape|its mask's shape"):
        aupro_regions([a_mask], [np.zeros((2, 2, 2))])


def test_aupro_regions_3d_region_counts_once():
    mask = np.zeros((6, 6, 6), dtype=bool)
    mask[2:4, 2:4, 1:5] = True  # one 3D region spanning 4 slices
    rng = np.random.default_rng(2)
    separated = mask + 0.5 * rng.random(mask.shape)  # every lesion voxel above every normal voxel
    assert aupro_regions([mask], [separated]) == pytest.approx(1.0)
    # one 3D region: 9 voxels in slice 1 (detected) + a 3-voxel stalk in slices 2-4 (missed).
    # 3D PRO = 9/12 = 0.75; a per-slice definition would give (1 + 0 + 0 + 0) / 4 = 0.25.
    lesion = np.zeros((6, 6, 6), dtype=bool)
    lesion[2:5, 2:5, 1] = True
    lesion[3, 3, 2:5] = True
    part = np.where(lesion, 0.0, 0.5 * rng.random(lesion.shape))
    part[2:5, 2:5, 1] = 1.0
    assert aupro_regions([lesion], [part]) == pytest.approx(0.75, abs=0.01)


def test_study_score_rules():
    s = SliceScores(np.array([0.1, 0.9, 0.5, 0.7], dtype=np.float32), np.zeros(4, np.float32))
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


def test_auto_preset_follows_modality_and_cohort_overrides_apply():
    from medzsad.config import PipelineConfig
    from medzsad.io.volume import SourceInfo, Volume

    def vol(data, modality=""):
        return Volume(
            data.astype(np.float32), np.eye(4), modality, SourceInfo(paths=("x.nii",), kind="nifti")
        )

    ct_like = vol(np.full((8, 8, 4), -1000.0))
    mr_like = vol(np.full((8, 8, 4), 10.0))
    xray = vol(np.full((8, 8, 1), 10.0))
    auto = PipelineConfig()
    assert [guess_modality(v) for v in (ct_like, mr_like, xray)] == ["CT", "MR", "DX"]
    assert choose_preset(auto, guess_modality(ct_like)).name.startswith("ct-")
    assert choose_preset(auto, guess_modality(mr_like)).name == "mr-brain"
    assert choose_preset(auto, guess_modality(xray)).name == "xray-2d"
    assert choose_preset(auto, "CT", body_part="CHEST").name == "ct-chest"
    assert choose_preset(auto, "CT", body_part="HEAD").name == "ct-head"
    assert choose_preset(PipelineConfig(preset="ct-head"), "MR").name == "ct-head"
    over = choose_preset(
        PipelineConfig(
            preset="ct-head", axis="coronal", skip_empty_slices=False, window={"center": 50, "width": 100}
        ),
        "CT",
    )
    assert over.axis == "coronal" and over.skip_empty_slices is False
    assert over.intensity.window.center == 50 and over.intensity.window.width == 100
