"""A marker at voxel (i, j, k) of the source comes back at (i, j, k) after slices -> model -> inverse."""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from dicom_factory import SAGITTAL, SeriesSpec, oblique_iop, write_2d, write_enhanced, write_series
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medzsad.io.readers import load_volume
from medzsad.io.volume import SourceInfo, Volume
from medzsad.transforms.pipeline import prepare_slices
from medzsad.transforms.preset import load_preset
from medzsad.transforms.slicing import Reorientation

MEAN, STD = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)


def _nifti(tmp: Path, affine: np.ndarray) -> str:
    p = tmp / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((9, 11, 7), np.float32), affine), p)
    return str(p)


def _nrrd(tmp: Path) -> str:
    img = sitk.Image(10, 8, 6, sitk.sitkFloat32)
    img.SetSpacing((0.8, 1.3, 2.0))
    img.SetOrigin((3.0, -4.0, 5.0))
    img.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))
    p = tmp / "v.nrrd"
    sitk.WriteImage(img, str(p))
    return str(p)


def _png(tmp: Path) -> str:
    p = tmp / "v.png"
    Image.fromarray(np.zeros((13, 17), np.uint8)).save(p)
    return str(p)


SOURCES = {
    "dicom_axial_lps": lambda t: write_series(t / "d", SeriesSpec())[0].parent,
    "dicom_oblique": lambda t: write_series(t / "d", SeriesSpec(iop=oblique_iop(25, 15)))[0].parent,
    "dicom_sagittal": lambda t: write_series(t / "d", SeriesSpec(iop=SAGITTAL, n_slices=7))[0].parent,
    "dicom_multiframe": lambda t: write_enhanced(t / "e.dcm", SeriesSpec(iop=oblique_iop(-30, 5))),
    "dicom_2d": lambda t: write_2d(t / "cr.dcm"),
    "nifti_ras": lambda t: _nifti(t, np.diag([1.2, 0.9, 2.5, 1.0])),
    "nifti_permuted_flipped": lambda t: _nifti(
        t, np.array([[0, 0, -2.0, 10], [-0.7, 0, 0, 5], [0, 1.3, 0, -3], [0, 0, 0, 1]])
    ),
    "nrrd": _nrrd,
    "png": _png,
}


def _marker_volume(v: Volume, ijk: tuple[int, int, int]) -> Volume:
    data = np.zeros_like(v.data)
    data[ijk] = 1000.0
    return Volume(data, v.affine_ras, v.modality, v.source, v.slice_positions_lps_mm)


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_marker_comes_back(tmp_path: Path, source: str, axis: str) -> None:
    v = load_volume(str(SOURCES[source](tmp_path)))
    preset = load_preset("ct-head").updated(
        window={"center": 500, "width": 1000}, axis=axis, skip_empty_slices=False
    )
    rng = np.random.default_rng(zlib.crc32(f"{source}/{axis}".encode()))  # same in every process
    shape = v.shape_ijk
    corners = [(0, 0, 0), tuple(s - 1 for s in shape)]
    for ijk in corners + [tuple(int(rng.integers(0, s)) for s in shape) for _ in range(4)]:
        vol = _marker_volume(v, ijk)
        for size in (28, 45):
            prep = prepare_slices(vol, preset, size, MEAN, STD)
            maps = prep.images[:, 0] * STD[0] + MEAN[0]
            back = prep.to_volume(maps)
            assert back.shape == v.shape_ijk and back.dtype == np.float32
            assert np.unravel_index(int(np.argmax(back)), back.shape) == ijk, (ijk, size)
            mask = prep.to_mask((maps > 0.5 * float(maps.max())).numpy().astype(np.uint8))
            assert mask.shape == v.shape_ijk and mask[ijk] == 1
        assert np.array_equal(prep.inverse.source_affine, v.affine_ras)


def test_downscaled_marker_comes_back() -> None:
    """A 3x3 blob in a 64 x 64 slice comes back centred on its voxel after 64 -> 28 -> 64 (no shift)."""
    data = np.zeros((64, 64, 3), np.float32)
    data[40:43, 10:13, 1] = 1000.0
    v = Volume(data, np.diag([-0.5, -0.5, 3.0, 1.0]), "CT", SourceInfo(paths=(), kind="nifti"))
    preset = load_preset("ct-head").updated(window={"center": 500, "width": 1000}, skip_empty_slices=False)
    prep = prepare_slices(v, preset, 28, MEAN, STD)
    back = prep.to_volume(prep.images[:, 0] * STD[0] + MEAN[0])
    w = np.where(back > 0.5 * back.max(), back, 0.0)
    centre = [
        float((w.sum(axis=tuple(a for a in range(3) if a != ax)) * np.arange(back.shape[ax])).sum() / w.sum())
        for ax in range(3)
    ]
    np.testing.assert_allclose(centre, (41.0, 11.0, 1.0), atol=0.25)  # sub-voxel: 28 px hold less detail
    assert np.all(back[:, :, [0, 2]] == 0)


def test_skipped_slices_are_filled_and_indexed_in_source_order() -> None:
    data = np.full((6, 5, 8), -1000.0, np.float32)
    data[:, :, 2:5] = 40.0
    aff = np.diag([1.0, 1.0, -2.0, 1.0])  # k runs inferior: canonical index is flipped
    v = Volume(data, aff, "CT", SourceInfo(paths=(), kind="nifti"))
    prep = prepare_slices(v, load_preset("ct-head"), 28, MEAN, STD)
    assert prep.source_axis == 2
    assert sorted(prep.slice_index.tolist()) == [2, 3, 4]
    assert prep.skipped.tolist() == [True, True, False, False, False, True, True, True]
    back = prep.to_volume(np.ones((3, 28, 28), np.float32), fill=-1.0)
    np.testing.assert_allclose(back[:, :, 2:5], 1.0, atol=1e-6)
    assert np.all(back[:, :, [0, 1, 5, 6, 7]] == -1.0)


_AXCODES = st.permutations([0, 1, 2]).flatmap(
    lambda perm: st.tuples(st.just(perm), st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3))
)


@settings(max_examples=40, deadline=None)
@given(
    _AXCODES,
    st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    st.lists(st.floats(0.3, 4.0), min_size=3, max_size=3),
)
def test_reorientation_inverse_is_exact(axes, shape, zooms) -> None:
    perm, signs = axes
    a = np.eye(4)
    a[:3, :3] = 0
    for src, dst in enumerate(perm):
        a[dst, src] = signs[src] * zooms[src]
    arr = np.random.default_rng(0).random(shape).astype(np.float32)
    ro = Reorientation.of(a, shape)
    canon = ro.apply(arr)
    # canonical affine is RAS-aligned with positive diagonal
    assert np.all(np.diag(ro.canonical_affine)[:3] > 0)
    # same voxel, same world position
    idx = np.array([shape[0] - 1, 0, shape[2] // 2])
    world = a @ np.r_[idx, 1]
    cidx = np.rint(np.linalg.solve(ro.canonical_affine, world)[:3]).astype(int)
    assert canon[tuple(cidx)] == arr[tuple(idx)]
    assert np.array_equal(ro.invert(canon), arr)
