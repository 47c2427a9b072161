"""``cut_slices`` works on strided views and normalises only the kept slices; the result equals the
whole-volume formulation (normalise everything, reorient with a copy, cut, then pick the kept slices)
bit for bit, for every orientation, axis, foreground space and memory layout of the scan."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from traced import traced_peak

from medzsad.io.volume import SourceInfo, Volume
from medzsad.transforms.clip_input import ToClipInput, resize_stack
from medzsad.transforms.foreground import ForegroundSlices
from medzsad.transforms.normalize import scale_range
from medzsad.transforms.pipeline import cut_slices, intensity_range, prepare_axes
from medzsad.transforms.preset import Preset, load_preset
from medzsad.transforms.slicing import SliceExtractor


def _whole_volume_cut(volume: Volume, preset: Preset) -> tuple[np.ndarray, np.ndarray]:
    low, high = intensity_range(volume, preset)
    normalized = np.asarray(scale_range(volume.data, low, high), dtype=np.float32)
    geo = SliceExtractor(preset.axis).geometry(volume.affine_ras, volume.shape_ijk)
    canonical = geo.reorientation.apply(normalized)
    if preset.skip_empty_slices:
        fg = preset.foreground
        basis = geo.reorientation.apply(volume.data) if fg.space == "raw" else canonical
        keep = np.asarray(ForegroundSlices(fg.threshold, fg.min_fraction, axis=geo.canonical_axis)(basis))
    else:
        keep = np.ones(geo.n_slices, dtype=bool)
    kept = np.flatnonzero(keep)
    # display orientation written out (rows and columns flipped), not through the code under test
    display = np.moveaxis(canonical, geo.canonical_axis, 0).transpose(0, 2, 1)[:, ::-1, ::-1]
    return np.ascontiguousarray(display[kept], dtype=np.float32), kept


def _affine(perm: tuple[int, ...], signs: tuple[int, ...]) -> np.ndarray:
    a = np.zeros((4, 4))
    for col, (row, sign) in enumerate(zip(perm, signs)):
        a[row, col] = sign * (0.6 + 0.3 * col)
    a[:3, 3] = [10.0, -20.0, 5.0]
    a[3, 3] = 1.0
    return a


def _scan(rng: np.random.Generator, layout: str) -> np.ndarray:
    data = rng.normal(-600.0, 500.0, (14, 11, 9)).astype(np.float32)
    data[:, :, :2] = -1000.0  # empty (air) slices at one end of every axis
    data[:2] = -1000.0
    data[:, :3] = -1000.0
    if layout == "fortran":
        return np.asfortranarray(data)
    if layout == "strided":
        return np.flip(data.transpose(2, 1, 0), 0).transpose(2, 1, 0)
    return data


SIGNS = [(1, 1, 1), (-1, -1, 1), (-1, 1, -1)]
ORIENTATIONS = [(p, s) for p in itertools.permutations(range(3)) for s in SIGNS]


@pytest.mark.parametrize("preset_name", ["ct-head", "mr-brain"])
@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("layout", ["c", "fortran", "strided"])
def test_view_cut_equals_whole_volume_cut(preset_name: str, axis: str, layout: str) -> None:
    rng = np.random.default_rng(len(preset_name) + len(axis) + len(layout))
    for skip in (True, False):
        preset = load_preset(preset_name).updated(axis=axis, skip_empty_slices=skip)
        for perm, signs in ORIENTATIONS[:: 2 if skip else 5]:
            data = _scan(rng, layout)
            if preset_name == "mr-brain":
                data = np.abs(data + 1000.0)  # MR: non-negative, air is 0
            volume = Volume(data, _affine(perm, signs), "CT", SourceInfo(("x.nii.gz",), "nifti"))
            cut = cut_slices(volume, preset)
            display, kept = _whole_volume_cut(volume, preset)
            assert np.array_equal(cut.kept, kept)
            assert 0 < kept.size <= cut.geometry.n_slices
            got = cut.display_slices()
            assert got.flags.c_contiguous and got.dtype == np.float32
            assert np.array_equal(got, display)


@pytest.mark.parametrize("shape", [(5, 512, 512), (37, 100, 80), (2, 224, 224)])
def test_clip_input_equals_the_broadcast_formula(shape: tuple[int, int, int]) -> None:
    """Channel-by-channel normalisation into the output equals ``(x3 - mean) / std`` bit for bit."""
    x = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    to_clip = ToClipInput(224, mean, std, (0.7, 0.9), True)
    got = to_clip(x)
    lb = to_clip.layout(shape[1:])
    t = torch.zeros((shape[0], *lb.padded))
    (top, left), (h, w) = lb.offset, lb.size
    t[:, top : top + h, left : left + w] = torch.from_numpy(x)
    r = resize_stack(t, (224, 224)).clamp_(0.0, 1.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    expected = ((r[:, None].expand(shape[0], 3, 224, 224) - m) / s).contiguous()
    assert got.is_contiguous() and torch.equal(got, expected)  # 37 slices: three chunks
    given = torch.full((shape[0], 3, 224, 224), np.nan)
    assert to_clip(x, given) is given and torch.equal(given, expected)
    assert np.array_equal(x, np.random.default_rng(sum(shape)).random(shape, dtype=np.float32))  # untouched
    with pytest.raises(ValueError, match="out must be"):
        to_clip(x, torch.empty((shape[0], 3, 224, 223)))


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_from_display_equals_the_canonical_formulation(axis: str) -> None:
    """Slices written through the display view of the source array land where the old copies put them."""
    rng = np.random.default_rng(7)
    shape = (9, 8, 7)
    for perm, signs in ORIENTATIONS:
        geo = SliceExtractor(axis).geometry(_affine(perm, signs), shape)
        kept = np.sort(rng.choice(geo.n_slices, size=max(1, geo.n_slices - 2), replace=False))
        slices = rng.random((kept.size, *geo.display_shape)).astype(np.float32)
        planes = slices[:, ::-1, ::-1].transpose(0, 2, 1)
        canon_moved = np.full((geo.n_slices, *planes.shape[1:]), -1.0, dtype=np.float32)
        canon_moved[kept] = planes
        expected = geo.reorientation.invert(np.moveaxis(canon_moved, 0, geo.canonical_axis))
        got = geo.from_display(slices, kept, fill=-1.0)
        assert got.shape == shape and got.dtype == np.float32
        assert np.array_equal(got, expected), (perm, signs)
        assert got.flags.c_contiguous


@pytest.mark.parametrize("preset_name", ["ct-head", "mr-brain"])
def test_a_cut_of_many_slices_is_tested_and_normalised_chunk_by_chunk_with_the_same_result(
    preset_name: str,
) -> None:
    """More slices than a chunk on every axis: chunk boundaries change nothing."""
    rng = np.random.default_rng(3)
    data = rng.normal(-600.0, 500.0, (40, 35, 37)).astype(np.float32)
    data[:, :, 20:23] = -1000.0  # empty slices inside, across a chunk boundary of the axial cut
    if preset_name == "mr-brain":
        data = np.abs(data + 1000.0)
    for axis in ("axial", "coronal", "sagittal"):
        preset = load_preset(preset_name).updated(axis=axis, skip_empty_slices=True)
        volume = Volume(data, _affine((2, 0, 1), (-1, 1, -1)), "CT", SourceInfo(("x.nii.gz",), "nifti"))
        cut = cut_slices(volume, preset)
        display, kept = _whole_volume_cut(volume, preset)
        assert np.array_equal(cut.kept, kept) and kept.size > 16
        assert np.array_equal(cut.display_slices(), display)
        assert np.array_equal(cut.display_slices(5, 21), display[5:21])


def test_cutting_and_converting_three_axes_holds_no_stack_of_display_slices() -> None:
    """The model input is the only whole stack: the slices are normalised a chunk at a time."""
    rng = np.random.default_rng(4)
    data = rng.normal(0.0, 300.0, (96, 96, 96)).astype(np.float32)
    volume = Volume(data, np.diag([-0.8, -0.8, 1.5, 1.0]), "CT", SourceInfo(("x.nii.gz",), "nifti"))
    preset = load_preset("ct-abdomen")
    prepared, peak = traced_peak(
        lambda: prepare_axes(volume, preset, 32, (0.5,) * 3, (0.25,) * 3, extra_axes=("coronal", "sagittal"))
    )
    assert sum(len(a.slice_index) for a in prepared.axes) == 3 * 96
    # before: every axis's display slices (each the size of the scan) were alive at once (4 scans);
    # now two chunks of 16 slices at a time (a third of a scan)
    assert peak < 0.5 * data.nbytes, f"traced peak {peak / data.nbytes:.2f} scans"
