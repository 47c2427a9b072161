"""The writer's whole-volume steps hold as few volume-sized copies as they need, and change nothing.

A 512x512x300 CT's heat map is 0.3 GB as float32; a writer process holds the scan, the study's
maps, the heat map and the lesion labels, so each extra copy in a step is a step's peak. Sizes
here are small (1 M voxels); tracemalloc counts NumPy's allocations.
"""

from __future__ import annotations

import numpy as np
import pytest
from traced import traced_peak

from medzsad.analysis.intensity import lesion_intensities
from medzsad.analysis.lesions import find_lesions, threshold_value
from medzsad.report.nifti_writer import heat_to_uint16

SHAPE = (100, 100, 100)  # 1 M voxels: 4 MB as float32


def test_a_large_lesion_is_measured_without_six_coordinate_arrays() -> None:
    heat = np.ones(SHAPE, np.float32)  # one lesion of every voxel
    heat[:, :, :10] = 0.0
    result, peak = traced_peak(lambda: find_lesions(heat, np.diag([0.5, 0.5, 2.0, 1.0]), 0.5, 0.0))
    [lesion] = result.lesions
    where = np.argwhere(result.labels == 1)  # the (n, 3) coordinates the measurement used to build
    assert lesion.voxels == len(where) == 900_000
    assert lesion.bbox_min_ijk == (0, 0, 10) and lesion.bbox_max_ijk == (99, 99, 99)
    ras = (np.diag([0.5, 0.5, 2.0, 1.0]) @ np.append(where.mean(axis=0), 1.0))[:3]
    assert lesion.centroid_ras_mm == tuple(float(v) for v in ras)  # bit for bit
    # 81.6 MB with six int64 arrays of the lesion's voxels in the measurement, 52.8 MB with the
    # whole volume's int32 component labels and foreground mask kept to the end, 39.7 MB now
    assert peak < 45e6, f"traced peak {peak / 1e6:.1f} MB for a 1 M-voxel lesion"


def test_the_percentile_threshold_reorders_only_its_own_copy() -> None:
    rng = np.random.default_rng(0)
    heat = rng.random(SHAPE, dtype=np.float32)
    body = np.zeros(SHAPE, bool)
    body[10:90] = True
    kept = heat.copy()
    with_body, peak = traced_peak(lambda: threshold_value(heat, "percentile", 99.0, body))
    assert with_body == float(np.percentile(kept[body], 99.0))
    assert peak < 1.5 * 3.2e6, f"traced peak {peak / 1e6:.1f} MB"  # the body's 3.2 MB once, not twice
    assert threshold_value(heat, "percentile", 99.0) == float(np.percentile(kept, 99.0))  # a view: copied
    np.testing.assert_array_equal(heat, kept)  # the heat map itself is never reordered


def test_the_uint16_heat_map_holds_one_float_copy() -> None:
    rng = np.random.default_rng(1)
    heat = rng.random(SHAPE, dtype=np.float32) * 1.2 - 0.1
    heat[0, 0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    out, peak = traced_peak(lambda: heat_to_uint16(heat))
    want = np.rint(np.clip(np.nan_to_num(heat, nan=0.0), 0.0, 1.0) * np.float32(65535)).astype(np.uint16)
    np.testing.assert_array_equal(out, want)
    # one float32 copy (4 MB) and the uint16 result (2 MB), no masks; nan_to_num took 9 MB
    assert peak < 7.5e6, f"traced peak {peak / 1e6:.1f} MB"


def test_a_large_lesion_s_intensities_need_two_float64_copies_of_its_voxels() -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(40.0, 30.0, SHAPE).astype(np.float32)
    labels = np.zeros(SHAPE, np.uint8)
    labels[:, :, 10:] = 1  # 0.9 M voxels: 7.2 MB as float64
    [stats], peak = traced_peak(lambda: lesion_intensities(labels, data, 1))
    inside = data[:, :, 10:].astype(np.float64)
    assert (stats.min, stats.max, stats.median) == (inside.min(), inside.max(), float(np.median(inside)))
    assert stats.mean == pytest.approx(inside.mean(), rel=1e-12)
    assert stats.std == pytest.approx(inside.std(), rel=1e-9)
    # the values and their squared deviations (2 x 7.2 MB) and the masks; 30.7 MB with a sorted
    # copy, its int64 order, two temporaries of the deviations and a copy for the median
    assert peak < 25e6, f"traced peak {peak / 1e6:.1f} MB"
