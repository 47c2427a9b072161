from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medzsad import fileio as atomic
from medzsad.analysis.lesions import find_lesions, threshold_value, voxel_volume_ml
from medzsad.errors import OutputError
from medzsad.report.lesions import lesions_table
from medzsad.report.nifti_writer import nifti_bytes, write_heatmap, write_mask
from medzsad.report.overlay import OverlaySpec, display_slice, render_overlay

AFFINE = np.array([[-0.8, 0, 0, 100.0], [0, -0.8, 0, 120.0], [0, 0, 2.5, -50.0], [0, 0, 0, 1]])


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "a.txt"
    atomic.write_text(p, "one\n")
    assert p.read_text() == "one\n"
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert p.read_text() == "one\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_write_unwritable_dir_raises_output_error(tmp_path):
    with pytest.raises(OutputError, match="cannot write"):
        atomic.write_text(tmp_path / "missing" / "x.txt", "x")


def test_write_json_nan_is_null_and_csv_roundtrip(tmp_path):
    atomic.write_json(tmp_path / "m.json", {"b": float("nan"), "a": [1.5, float("nan")]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1.5, None], "b": None}
    df = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    atomic.write_csv(tmp_path / "t.csv", df)
    assert (tmp_path / "t.csv").read_text() == "x,y\n1,a\n2,b\n"


def test_heatmap_and_mask_keep_shape_affine_dtype_and_codes(tmp_path):
    rng = np.random.default_rng(0)
    heat = rng.random((5, 6, 7)).astype(np.float64)
    hp = write_heatmap(tmp_path / "heatmap.nii.gz", heat, AFFINE, dtype="float32")
    mp = write_mask(tmp_path / "mask.nii.gz", (heat > 0.5).astype(np.int64) * 3, AFFINE)
    h, m = nib.load(hp), nib.load(mp)
    assert h.shape == (5, 6, 7) and m.shape == (5, 6, 7)
    assert h.get_data_dtype() == np.float32 and m.get_data_dtype() == np.uint8
    np.testing.assert_allclose(h.affine, AFFINE, atol=1e-5)
    np.testing.assert_allclose(h.get_qform(), AFFINE, atol=1e-5)
    assert int(h.header["sform_code"]) == 1 and int(h.header["qform_code"]) == 1
    np.testing.assert_array_equal(np.asarray(h.dataobj), heat.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(m.dataobj), (heat > 0.5) * 3)


def test_nifti_bytes_are_deterministic_and_sheared_affine_has_no_qform(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert nifti_bytes(data, AFFINE) == nifti_bytes(data, AFFINE)
    sheared = AFFINE.copy()
    sheared[1, 2] = 0.7  # gantry tilt
    p = write_heatmap(tmp_path / "h.nii.gz", data, sheared, dtype="float32")
    img = nib.load(p)
    assert int(img.header["qform_code"]) == 0
    np.testing.assert_allclose(img.affine, sheared, atol=1e-5)


def test_mask_rejects_out_of_range_labels(tmp_path):
    with pytest.raises(OutputError, match="0..255"):
        write_mask(tmp_path / "m.nii.gz", np.full((2, 2, 2), 300), AFFINE)


def _sphere(shape, centre, radius):
    g = np.indices(shape).astype(float)
    return ((g - np.array(centre)[:, None, None, None]) ** 2).sum(0) <= radius**2


def test_find_lesions_volume_centroid_bbox_and_order():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10, -20, -30]
    heat = np.zeros((30, 30, 30), dtype=np.float32)
    big = _sphere(heat.shape, (10, 10, 10), 4)
    small = _sphere(heat.shape, (22, 22, 22), 2)
    heat[big] = 0.7
    heat[small] = 0.9
    heat[0, 29, 0] = 0.95  # single voxel: 8 mm³ = 0.008 mL, dropped by min volume
    res = find_lesions(heat, affine, threshold=0.5, min_volume_ml=0.01)
    assert res.n_dropped_small == 1
    assert [les.label for les in res.lesions] == [1, 2]
    first, second = res.lesions
    assert first.max_score == pytest.approx(0.9) and second.max_score == pytest.approx(0.7)
    assert first.voxels == small.sum() and second.voxels == big.sum()
    assert second.volume_ml == pytest.approx(big.sum() * 8 / 1000)
    assert second.centroid_ras_mm == pytest.approx((10.0, 0.0, -10.0))
    assert second.centroid_lps_mm == pytest.approx((-10.0, 0.0, -10.0))
    assert second.bbox_min_ijk == (6, 6, 6) and second.bbox_max_ijk == (14, 14, 14)
    assert (res.labels == 2).sum() == big.sum() and res.labels[0, 29, 0] == 0
    table = lesions_table(res)
    assert list(table["component"]) == [1, 2] and table.loc[1, "centroid_r_mm"] == pytest.approx(10.0)


def test_lesions_26_connectivity_joins_diagonal_voxels():
    heat = np.zeros((4, 4, 4), dtype=np.float32)
    heat[0, 0, 0] = heat[1, 1, 1] = 1.0
    res = find_lesions(heat, np.eye(4), 0.5, 0.0)
    assert len(res.lesions) == 1 and res.lesions[0].voxels == 2
    assert lesions_table(find_lesions(np.zeros((2, 2, 2)), np.eye(4), 0.5, 0.0)).shape == (0, 17)


def test_threshold_rules_and_voxel_volume():
    heat = np.linspace(0, 1, 101).reshape(101, 1, 1)
    assert threshold_value(heat, "fixed", 0.3) == 0.3
    assert threshold_value(heat, "percentile", 90) == pytest.approx(0.9)
    body = np.zeros_like(heat, dtype=bool)
    body[:51] = True
    assert threshold_value(heat, "percentile", 50, body) == pytest.approx(0.25)
    assert voxel_volume_ml(AFFINE) == pytest.approx(0.8 * 0.8 * 2.5 / 1000)


def test_display_slice_is_radiological_whatever_the_voxel_order():
    vol = np.random.default_rng(1).random((4, 5, 3))
    ras = np.diag([1.0, 1.0, 1.0, 1.0])  # i -> towards the patient's right (RAS+), j -> anterior
    lps_like = np.diag([-1.0, -1.0, 1.0, 1.0])  # i -> towards the patient's left (DICOM), j -> posterior
    flipped = vol[::-1, ::-1, :]
    a = display_slice(vol, ras, 2, 1)
    b = display_slice(flipped, lps_like, 2, 1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 4)  # rows = j (A-P), cols = i (R-L)
    # top-left of the screen is the patient's right and anterior: highest i and highest j here
    assert a[0, 0] == vol[3, 4, 1]


def test_render_overlay_png(tmp_path):
    scan = np.random.default_rng(2).random((8, 8, 4)).astype(np.float32)
    spec = OverlaySpec(2, (3, 1), (0.9, 0.4), (0.0, 1.0), "study abc  score 0.9", smoke=True)
    png = render_overlay(scan, scan, np.eye(4), spec)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png == render_overlay(scan, scan, np.eye(4), spec)
