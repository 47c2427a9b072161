"""Frames of a DICOM SEG / Parametric Map taken as strided views equal the pixel-by-pixel mapping."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import medzsad.report.seg_writer_geometry as geometry
from medzsad.errors import GeometryError
from medzsad.report.seg_writer_geometry import SourceFrame, _frame_voxels, gather_frames

SHAPE = (7, 6, 5)


def _affine_lps(perm: tuple[int, ...], signs: tuple[int, ...], spacing=(0.7, 0.8, 2.5)) -> np.ndarray:
    a = np.zeros((4, 4))
    for col, (row, sign) in enumerate(zip(perm, signs)):
        a[row, col] = sign * spacing[col]
    a[:3, 3] = [-30.0, 12.5, 100.0]
    a[3, 3] = 1.0
    return a


def _frames_along(affine: np.ndarray, axis: int, flip_rows: bool, transpose: bool) -> list[SourceFrame]:
    """Frames that cut the volume along voxel ``axis``, as a scanner's slices would."""
    in_plane = [x for x in range(3) if x != axis]
    if transpose:
        in_plane = in_plane[::-1]
    col_axis, row_axis = in_plane  # columns step along col_axis, rows along row_axis
    frames = []
    for k in range(SHAPE[axis]):
        start = np.zeros(3)
        start[axis] = k
        row_dir = affine[:3, col_axis]  # moving one column
        col_dir = affine[:3, row_axis] * (-1 if flip_rows else 1)
        if flip_rows:
            start[row_axis] = SHAPE[row_axis] - 1
        pos = (affine @ np.append(start, 1.0))[:3]
        dc, dr = np.linalg.norm(row_dir), np.linalg.norm(col_dir)
        frames.append(
            SourceFrame(pos, row_dir / dc, col_dir / dr, (dr, dc), SHAPE[row_axis], SHAPE[col_axis])
        )
    return frames


def _pixel_by_pixel(array: np.ndarray, affine: np.ndarray, frames: list[SourceFrame]) -> np.ndarray:
    inv = np.linalg.inv(affine)
    out = []
    for f in frames:
        idx = _frame_voxels(f, inv, SHAPE)
        out.append(array[idx[..., 0], idx[..., 1], idx[..., 2]])
    return np.stack(out)


@pytest.fixture()
def slow_calls(monkeypatch) -> list[int]:
    """Counts the pixel-by-pixel mappings gather_frames falls back to."""
    calls: list[int] = []
    real = geometry._frame_voxels
    monkeypatch.setattr(geometry, "_frame_voxels", lambda *a: calls.append(1) or real(*a))
    return calls


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_axis_aligned_frames_equal_the_pixel_mapping(perm: tuple[int, ...], slow_calls) -> None:
    array = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE)
    for signs in [(1, 1, 1), (-1, 1, -1), (-1, -1, 1)]:
        affine = _affine_lps(perm, signs)
        for axis, flip, transpose in itertools.product(range(3), (False, True), (False, True)):
            frames = _frames_along(affine, axis, flip, transpose)
            got = gather_frames(array, affine, frames)
            assert np.array_equal(got, _pixel_by_pixel(array, affine, frames)), (signs, axis, flip, transpose)
    assert slow_calls == []  # every frame was a strided view


def test_oblique_and_coarser_frames_use_the_pixel_mapping(slow_calls) -> None:
    array = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE)
    affine = _affine_lps((0, 1, 2), (1, 1, 1), spacing=(1.0, 1.0, 1.0))
    frames = _frames_along(affine, 2, False, False)
    coarse = [SourceFrame(f.position_lps_mm, f.row_cos, f.col_cos, (2.0, 2.0), 3, 3) for f in frames]
    assert np.array_equal(gather_frames(array, affine, coarse), _pixel_by_pixel(array, affine, coarse))
    assert len(slow_calls) == len(coarse)
    c, s = np.cos(0.3), np.sin(0.3)
    tilted = [
        SourceFrame(
            frames[0].position_lps_mm, np.array([c, s, 0.0]), np.array([-s, c, 0.0]), (1.0, 1.0), 2, 2
        )
    ]
    with pytest.raises(GeometryError, match="off the volume grid"):
        gather_frames(array, affine, tilted)


def test_a_frame_outside_the_volume_is_a_geometry_error() -> None:
    array = np.zeros(SHAPE, dtype=np.uint8)
    affine = _affine_lps((0, 1, 2), (1, 1, 1))
    frame = _frames_along(affine, 2, False, False)[0]
    shifted = SourceFrame(
        frame.position_lps_mm - affine[:3, 0],
        frame.row_cos,
        frame.col_cos,
        frame.spacing_mm,
        frame.rows,
        frame.cols,
    )
    with pytest.raises(GeometryError, match="outside the volume"):
        gather_frames(array, affine, [shifted])
