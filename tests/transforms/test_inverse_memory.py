"""Maps go back to the source grid a chunk at a time, straight into the result, with the same values.

A writer holds the scan, the study's maps and the heat map; putting an axis's maps back used to add
the maps at letterboxed size, a copy of them, the canonical stack and its reoriented copy (about
three volumes at once, 0.9 GB for a 512x512x300 CT). Now the result is allocated once in the
source's voxel order and each chunk of maps is written into it through a canonical view.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from traced import traced_peak

from medzsad.io.volume import SourceInfo, Volume
from medzsad.transforms import inverse
from medzsad.transforms.clip_input import resize_stack
from medzsad.transforms.inverse import InverseInfo, masks_to_source, to_source_geometry
from medzsad.transforms.pipeline import prepare_axes
from medzsad.transforms.preset import load_preset

AFFINES = {
    "lps": np.diag([-0.8, -0.8, 1.5, 1.0]),
    "permuted_flipped": np.array([[0, 0, -2.0, 10], [-0.7, 0, 0, 5], [0, 1.3, 0, -3], [0, 0, 0, 1]]),
}
SIZE = 40


def _cuts(affine: np.ndarray, shape: tuple[int, int, int] = (36, 30, 26)):
    rng = np.random.default_rng(0)
    data = rng.normal(0, 300, shape).astype(np.float32)
    data[: shape[0] // 4] = -1000.0  # empty slices on one side: some are skipped
    volume = Volume(data, affine, "CT", SourceInfo(("x.nii.gz",), "nifti"))
    prepared = prepare_axes(
        volume, load_preset("ct-abdomen"), SIZE, (0.5,) * 3, (0.25,) * 3,
        extra_axes=("coronal", "sagittal"), stride=3, channels=1,
    )  # fmt: skip
    return prepared.axes


def _whole_stack(maps: np.ndarray, info: InverseInfo, fill: float, mode: str = "bilinear") -> np.ndarray:
    """The old way: every map resized at once, a canonical stack, then reoriented into a copy."""
    x = resize_stack(torch.from_numpy(maps), info.letterbox.padded, mode)
    (top, left), (h, w) = info.letterbox.offset, info.letterbox.size
    planes = x[:, top : top + h, left : left + w].numpy()[:, ::-1, ::-1].transpose(0, 2, 1)
    between = info.between
    if mode == "nearest":  # label masks: no interpolation between scored slices
        planes, between = np.rint(planes).astype(np.uint8), None
    geo = info.geometry
    stack = np.full((geo.n_slices, *planes.shape[1:]), fill, planes.dtype)
    stack[info.canonical_index] = planes
    geo.interpolate_between(stack, info.canonical_index, between)
    return np.asarray(geo.reorientation.invert(np.moveaxis(stack, 0, geo.canonical_axis)))


@pytest.mark.parametrize("orientation", sorted(AFFINES))
def test_chunks_give_the_whole_stack_s_result_bit_for_bit(orientation: str, monkeypatch) -> None:
    rng = np.random.default_rng(1)
    for cut in _cuts(AFFINES[orientation]):
        maps = rng.random((len(cut.slice_index), SIZE, SIZE), dtype=np.float32)
        expected = _whole_stack(maps, cut.inverse, -1.0)
        assert cut.axis == "axial" or len(cut.inverse.between)  # the strided axes interpolate
        for chunk in (1, 5, 16, 10_000):
            monkeypatch.setattr(inverse, "_CHUNK", chunk)
            got = to_source_geometry(maps, cut.inverse, fill=-1.0)
            assert got.dtype == np.float32 and got.flags.c_contiguous
            np.testing.assert_array_equal(got, expected, err_msg=f"{cut.axis}, chunk {chunk}")
            labels = (maps > 0.7).astype(np.float32)
            masks = masks_to_source(labels, cut.inverse)
            assert masks.dtype == np.uint8 and 0 < masks.sum() < masks.size
            np.testing.assert_array_equal(masks, _whole_stack(labels, cut.inverse, 0, "nearest"))


def test_the_result_is_the_only_volume_sized_allocation() -> None:
    [axial, *_] = _cuts(AFFINES["lps"], (60, 60, 48))
    maps = np.random.default_rng(2).random((len(axial.slice_index), SIZE, SIZE), dtype=np.float32)
    heat, peak = traced_peak(lambda: to_source_geometry(maps, axial.inverse))
    np.testing.assert_array_equal(heat, _whole_stack(maps, axial.inverse, 0.0))
    # before: the cropped maps copied (one volume), the canonical stack, its reoriented copy: 3x
    assert peak < 1.25 * heat.nbytes, f"traced peak {peak / heat.nbytes:.2f} volumes"
