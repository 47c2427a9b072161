"""World-space invariance: one scan in any of the 48 axis-aligned voxel orders gives the same heat map.

A crop of nilearn's MNI152 T1 template (4 mm) is stored in every axis permutation x flip (the
affine changed to match, so the world is the same) and scored by the study's own functions (read
result -> slices of every axis -> the one batch loop -> heat map on the source grid -> fusion),
with one axis and with three axes at the default stride. Mapped back to the original voxel order
each heat map must equal the original-order one bit for bit (max |delta| = 0), and the slices
scored must be the same.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medzsad.config import PipelineConfig
from medzsad.io.volume import SourceInfo, Volume
from medzsad.study.loading import prepare_study_slices
from medzsad.study.postprocess import assemble_heatmap
from medzsad.study.reading import StudyRead
from medzsad.study.scorer import ModelScorer
from medzsad.study.scoring import score_study
from medzsad.study.types import SeriesSummary, StudyInput
from medzsad.transforms.preset import load_preset

FLIPS = list(itertools.product((False, True), repeat=3))
ORDERS = [(p, f) for p in itertools.permutations(range(3)) for f in FLIPS]
THREE = ("axial", "coronal", "sagittal")


def reorder(data: np.ndarray, affine: np.ndarray, perm: tuple[int, ...], flips: tuple[bool, ...]):
    """The same scan with new voxel axis ``k`` = old axis ``perm[k]``, reversed where ``flips[k]``."""
    out = np.transpose(data, perm)
    shape = out.shape
    out = np.flip(out, [k for k in range(3) if flips[k]])
    to_old = np.zeros((4, 4))
    to_old[3, 3] = 1.0
    for k in range(3):
        to_old[perm[k], k] = -1.0 if flips[k] else 1.0
        to_old[perm[k], 3] = shape[k] - 1 if flips[k] else 0.0
    return np.ascontiguousarray(out), affine @ to_old


def back(heat: np.ndarray, perm: tuple[int, ...], flips: tuple[bool, ...]) -> np.ndarray:
    """Undo :func:`reorder` on an array of the reordered grid."""
    return np.transpose(np.flip(heat, [k for k in range(3) if flips[k]]), np.argsort(perm))


def heat_map(data: np.ndarray, affine: np.ndarray, scorer: ModelScorer, axes: tuple[str, ...]):
    """The study's heat map, through the study's functions, and the scored slices per axis."""
    pipeline = PipelineConfig(axes=axes)
    volume = Volume(data, affine, "MR", SourceInfo(paths=(), kind="nifti"))
    summary = SeriesSummary("uid", "", "MR", "", 1, "mr-brain")
    read = StudyRead(volume, summary, load_preset("mr-brain"), axes[1:], pipeline.axis_stride)
    prepared = prepare_study_slices(StudyInput("s", "s"), read, scorer)
    scored = score_study(prepared, scorer, 16)
    heat = assemble_heatmap(prepared, scored.maps, pipeline.fusion)
    return heat, prepared


def test_the_orders_are_48_distinct_voxel_orders_of_one_world(anatomy: tuple[np.ndarray, np.ndarray]) -> None:
    data, affine = anatomy
    seen = set()
    for perm, flips in ORDERS:
        moved, aff = reorder(data, affine, perm, flips)
        seen.add((moved.shape, moved.tobytes()[:4096], aff.tobytes()))
        np.testing.assert_array_equal(back(moved, perm, flips), data)
        # the same voxel is at the same world point
        ijk = np.array([3, 5, 7])
        new = np.array([0, 0, 0])
        for k in range(3):
            new[k] = (data.shape[perm[k]] - 1 - ijk[perm[k]]) if flips[k] else ijk[perm[k]]
        np.testing.assert_allclose(aff[:3, :3] @ new + aff[:3, 3], affine[:3, :3] @ ijk + affine[:3, 3])
    assert len(ORDERS) == 48 and len(seen) == 48


@pytest.mark.parametrize("axes", [("axial",), THREE], ids=["one-axis", "three-axes"])
def test_every_voxel_order_gives_the_same_heat_in_world_space(
    anatomy: tuple[np.ndarray, np.ndarray], scorer: ModelScorer, axes: tuple[str, ...]
) -> None:
    data, affine = anatomy
    ref, ref_prep = heat_map(data, affine, scorer, axes)
    assert [a.axis for a in ref_prep.axes] == list(axes)
    assert ref.max() > 0.1 and np.unique(ref).size > 500  # a real, varied map
    if len(axes) == 3:  # the extra axes are strided and interpolated, the primary is not
        assert all(a.covered.sum() > len(a.slice_index) for a in ref_prep.axes[1:])
    worst = 0.0
    for perm, flips in ORDERS:
        moved, aff = reorder(data, affine, perm, flips)
        heat, prep = heat_map(moved, aff, scorer, axes)
        assert heat.shape == moved.shape
        for a, b in zip(prep.axes, ref_prep.axes, strict=True):
            assert a.axis == b.axis and len(a.slice_index) == len(b.slice_index)
        worst = max(worst, float(np.abs(back(heat, perm, flips) - ref).max()))
    assert worst == 0.0
