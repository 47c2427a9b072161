"""Several axes per study: strided cuts, interpolation between scored slices, fusion, top_volume."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from traced import traced_peak

from medzsad.config import StudyScoreRule
from medzsad.io.volume import SourceInfo, Volume
from medzsad.study.loading import prepare_study_slices
from medzsad.study.postprocess import (
    GEOMETRIC_FLOOR,
    SliceScores,
    assemble_heatmap,
    scored_region,
    study_score,
)
from medzsad.study.reading import StudyRead
from medzsad.study.scoring import batches, slice_positions
from medzsad.study.types import AXES, SeriesSummary, StudyInput
from medzsad.transforms.pipeline import strided
from medzsad.transforms.preset import load_preset
from medzsad.transforms.slicing import SliceExtractor

SPEC = SimpleNamespace(image_size=28, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def _study(extra: tuple[str, ...] = ("coronal", "sagittal"), stride: int = 2):
    """A CT-like box (air around a 40 HU block), stored with flipped and permuted axes."""
    data = np.full((20, 16, 12), -1000.0, np.float32)
    data[3:17, 2:14, 2:10] = 40.0
    affine = np.array([[0, 0, -2.0, 30], [1.5, 0, 0, -10], [0, 1.2, 0, 5], [0, 0, 0, 1]])
    volume = Volume(data, affine, "CT", SourceInfo(paths=(), kind="nifti"))
    summary = SeriesSummary("uid", "", "CT", "", 1, "ct-abdomen")
    read = StudyRead(volume, summary, load_preset("ct-abdomen"), extra, stride)
    return prepare_study_slices(StudyInput("s", "s"), read, SPEC)  # type: ignore[arg-type]


def test_strided_keeps_every_kth_and_the_last() -> None:
    kept = np.arange(2, 12)
    scored, between = strided(kept, 3)
    assert scored.tolist() == [2, 5, 8, 11] and between.tolist() == [3, 4, 6, 7, 9, 10]
    assert strided(kept, 4)[0].tolist() == [2, 6, 10, 11]
    assert strided(kept, 1)[0].tolist() == kept.tolist() and strided(kept, 1)[1].size == 0


def test_heat_between_scored_slices_is_linear_along_the_axis() -> None:
    geo = SliceExtractor("axial").geometry(np.diag([1.0, 1.0, -2.0, 1.0]), (3, 4, 9))
    slices = np.stack([np.full(geo.display_shape, v, np.float32) for v in (0.0, 4.0, 8.0)])
    got = geo.from_display(slices, np.array([1, 5, 7]), fill=-1.0, between=np.array([2, 3, 4, 6]))
    # canonical (RAS) index t is source index 8 - t along k (the affine flips k)
    along_k = got[0, 0, ::-1]
    np.testing.assert_array_equal(along_k, [-1, 0, 1, 2, 3, 4, 6, 8, -1])


def test_three_axes_are_cut_into_one_input_with_their_positions() -> None:
    p = _study()
    assert [a.axis for a in p.axes] == ["axial", "coronal", "sagittal"]
    assert p.images.shape[0] == sum(len(a.slice_index) for a in p.axes)
    assert p.images.shape[1] == 1  # model-size slices, one channel: a batch is normalised when scored
    primary, coronal = p.axes[0], p.axes[1]
    assert primary.covered.tolist() == (~primary.skipped).tolist()  # the first axis: every slice
    assert coronal.covered.sum() > len(coronal.slice_index)  # strided: heat between scored slices
    pos = slice_positions(p)
    assert pos.shape == (p.images.shape[0], 2) and pos.dtype == torch.float32
    for a in p.axes:
        assert set(pos[a.rows, 1].tolist()) == {float(AXES.index(a.axis))}
        assert float(pos[a.rows, 0].min()) == 0.0 and float(pos[a.rows, 0].max()) == 1.0
    # one axis's batches stay within its rows
    rows = [pos_b[:, 1] for _, pos_b in batches(p, 5, coronal.rows)]
    assert torch.cat(rows).eq(1.0).all() and sum(len(r) for r in rows) == len(coronal.slice_index)


def _constant_maps(p, values: dict[str, float]) -> np.ndarray:
    maps = np.zeros((p.images.shape[0], 28, 28), np.float32)
    for a in p.axes:
        maps[a.rows] = values[a.axis]
    return maps


@pytest.mark.parametrize(
    ("fusion", "expected"),
    [("mean", (0.2 + 0.4 + 0.9) / 3), ("max", 0.9), ("geometric", (0.2 * 0.4 * 0.9) ** (1 / 3))],
)
def test_axes_are_fused_voxel_by_voxel(fusion: str, expected: float) -> None:
    p = _study()
    maps = _constant_maps(p, {"axial": 0.2, "coronal": 0.4, "sagittal": 0.9})
    heat = assemble_heatmap(p, maps, fusion)
    region = scored_region(p)
    assert heat.shape == p.volume.shape_ijk and heat.dtype == np.float32
    assert 0 < region.sum() < region.size
    np.testing.assert_allclose(heat[region], expected, rtol=1e-5)
    outside = heat[~region]
    if fusion == "geometric":  # an axis without heat there: the fused heat stays near 0
        assert outside.max() <= (GEOMETRIC_FLOOR * 0.4 * 0.9) ** (1 / 3) * (1 + 1e-5)
    else:
        assert outside.max() <= expected + 1e-6


def test_one_axis_is_the_axis_heat_itself() -> None:
    p = _study(extra=())
    maps = _constant_maps(p, {"axial": 0.3})
    for fusion in ("mean", "max", "geometric"):
        heat = assemble_heatmap(p, maps, fusion)
        np.testing.assert_allclose(heat[scored_region(p)], 0.3, rtol=1e-6)


def test_top_volume_is_the_mean_of_the_hottest_millilitres() -> None:
    heat = np.zeros((10, 10, 10), np.float32)
    heat[0, 0, :4] = [1.0, 0.8, 0.6, 0.4]
    scores = SliceScores(np.array([0.1, 0.2], np.float32), np.zeros(2, np.float32))
    rule = StudyScoreRule(method="top_volume", volume_ml=0.006)  # 3 voxels of 2 mm^3
    assert study_score(scores, heat, rule, None, 0.002) == pytest.approx(0.8)
    # independent of the slice thickness: the same tissue volume in thicker voxels is fewer voxels
    assert study_score(scores, heat, rule, None, 0.006) == pytest.approx(1.0)
    region = np.ones_like(heat, dtype=bool)
    region[0, 0, 0] = False
    assert study_score(scores, heat, rule, region, 0.002) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="voxel volume"):
        study_score(scores, heat, rule)


@pytest.mark.parametrize(("extra", "volumes"), [((), 1), (("coronal", "sagittal"), 2)])
def test_the_heat_map_holds_one_volume_per_axis_at_most_two(extra: tuple[str, ...], volumes: int) -> None:
    """Each axis's heat is the new array its way back made (not copied again); fusion adds one more."""
    data = np.full((64, 56, 48), -1000.0, np.float32)
    data[8:56, 6:50, 4:44] = 40.0
    volume = Volume(data, np.diag([-0.8, -0.8, 1.5, 1.0]), "CT", SourceInfo(paths=(), kind="nifti"))
    summary = SeriesSummary("uid", "", "CT", "", 1, "ct-abdomen")
    read = StudyRead(volume, summary, load_preset("ct-abdomen"), extra, 2)
    p = prepare_study_slices(StudyInput("s", "s"), read, SPEC)  # type: ignore[arg-type]
    maps = np.random.default_rng(0).random((p.images.shape[0], 28, 28), dtype=np.float32)
    maps[:, :3] = [[np.nan], [np.inf], [-np.inf]]  # rows of the first slices' maps
    want = np.nan_to_num(p.axes[0].to_source(maps[p.axes[0].rows]), nan=0.0).clip(0.0, 1.0)
    heat, peak = traced_peak(lambda: assemble_heatmap(p, maps, "mean"))
    assert 0.0 < float(heat.mean()) < 1.0 and np.isfinite(heat).all()
    if not extra:  # one axis: its heat, NaN as 0 and clipped to [0, 1]
        np.testing.assert_array_equal(heat, want)
    # before: an axis's way back held three volumes, and its result was copied once more
    assert peak < (volumes + 0.25) * heat.nbytes, f"traced peak {peak / heat.nbytes:.2f} volumes"
