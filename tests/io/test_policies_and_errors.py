"""Geometry problems per policy, and typed errors naming the file and tag for bad inputs."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_factory import SeriesSpec, write_series

from medzsad.errors import DicomError, InputError, NiftiError
from medzsad.io.readers import load_volume


def _load(paths: list[Path], policy: str):
    from medzsad.io.dicom_series import load_dicom_series

    return load_dicom_series([str(p) for p in paths], policy)


def test_missing_slice_error_policy(tmp_path: Path) -> None:
    paths = write_series(tmp_path, SeriesSpec(n_slices=6, missing=(2,)))
    with pytest.raises(DicomError, match="1 missing slice"):
        _load(paths, "error")


def test_missing_slice_resample_fills_gap(tmp_path: Path) -> None:
    spec = SeriesSpec(n_slices=6, missing=(2,), slope=1.0, intercept=0.0)
    v = _load(write_series(tmp_path, spec), "resample")
    assert v.shape_ijk == (spec.cols, spec.rows, 6)
    np.testing.assert_allclose(v.spacing_mm, (0.9, 0.7, 2.5), atol=1e-9)
    stored = spec.stored().astype(np.float32)
    assert np.array_equal(v.data[..., 3], stored[3].T)
    np.testing.assert_allclose(v.data[..., 2], (stored[1].T + stored[3].T) / 2, rtol=1e-6)
    assert v.source.sop_instance_uids[2] == ""
    assert any("resampled" in w for w in v.warnings)


def test_nonuniform_spacing_warn_and_error(tmp_path: Path) -> None:
    positions = [np.array([0.0, 0.0, z]) for z in (0.0, 2.0, 4.0, 6.7, 8.7)]
    paths = write_series(tmp_path, SeriesSpec(positions=positions))
    with pytest.raises(DicomError, match="non-uniform slice spacing"):
        _load(paths, "error")
    v = _load(paths, "warn")
    assert any("non-uniform" in w for w in v.warnings)
    np.testing.assert_allclose(v.spacing_mm[2], 8.7 / 4, atol=1e-6)  # SimpleITK's mean spacing
    np.testing.assert_allclose(v.slice_positions_lps_mm[:, 2], [0, 2, 4, 6.7, 8.7], atol=1e-6)


def test_gantry_tilt(tmp_path: Path) -> None:
    spec = SeriesSpec(tilt_shift_mm=0.7, slope=1.0, intercept=0.0, n_slices=4)
    paths = write_series(tmp_path, spec)
    with pytest.raises(DicomError, match="gantry tilt"):
        _load(paths, "error")
    warned = _load(paths, "warn")
    assert any("gantry tilt" in w for w in warned.warnings)
    fixed = _load(paths, "resample")
    # resampled grid: slice axis along the normal, spacing = the true slice distance
    np.testing.assert_allclose(fixed.direction_lps[:, 2], [0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(fixed.spacing_mm[2], 2.5, atol=1e-9)
    # slice k moved by k*0.7 mm along the column (j) axis = k*0.7/0.7 = k pixels
    stored = spec.stored().astype(np.float32)
    assert np.allclose(fixed.data[:, 5, 2], stored[2, 5 - 2, :])


def test_mixed_image_sizes(tmp_path: Path) -> None:
    spec = SeriesSpec(n_slices=4)
    paths = write_series(tmp_path / "a", spec)
    odd = SeriesSpec(n_slices=5, rows=10, cols=10, series_uid=spec.series_uid, study_uid=spec.study_uid)
    other = write_series(tmp_path / "b", odd)[4:]
    with pytest.raises(DicomError, match="mixed image sizes"):
        _load(paths + other, "error")
    v = _load(paths + other, "warn")
    assert v.shape_ijk == (12, 16, 4)
    assert any("dropped 1" in w for w in v.warnings)


def test_inconsistent_orientation(tmp_path: Path) -> None:
    spec = SeriesSpec(n_slices=3)
    paths = write_series(tmp_path / "a", spec)
    tilted = SeriesSpec(
        n_slices=1, iop=(1, 0, 0, 0, 0.8, 0.6), series_uid=spec.series_uid, study_uid=spec.study_uid
    )
    with pytest.raises(DicomError, match="inconsistent orientation"):
        _load(paths + write_series(tmp_path / "b", tilted), "error")


def test_truncated_file_names_file_and_tag(tmp_path: Path) -> None:
    paths = write_series(tmp_path, SeriesSpec(n_slices=2))
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: len(data) - 100])
    with pytest.raises(DicomError, match=r"PixelData \(7FE0,0010\)") as e:
        _load(paths, "warn")
    assert str(paths[0]) in str(e.value)


def test_no_pixel_data_names_tag(tmp_path: Path) -> None:
    paths = write_series(tmp_path, SeriesSpec(n_slices=2))
    ds = pydicom.dcmread(paths[1])
    del ds.PixelData
    ds.save_as(paths[1])
    with pytest.raises(DicomError, match=r"no PixelData \(7FE0,0010\)") as e:
        _load(paths, "warn")
    assert str(paths[1]) in str(e.value)


@pytest.mark.parametrize("n_slices", [1, 3])
def test_missing_image_position_names_tag(tmp_path: Path, n_slices: int) -> None:
    paths = write_series(tmp_path, SeriesSpec(n_slices=n_slices))
    ds = pydicom.dcmread(paths[0])
    del ds.ImagePositionPatient
    ds.save_as(paths[0])
    with pytest.raises(DicomError, match=r"ImagePositionPatient \(0020,0032\)") as e:
        _load(paths, "warn")
    assert str(paths[0]) in str(e.value)


def test_missing_orientation_names_tag(tmp_path: Path) -> None:
    paths = write_series(tmp_path, SeriesSpec(n_slices=2))
    ds = pydicom.dcmread(paths[0])
    del ds.ImageOrientationPatient
    ds.save_as(paths[0])
    with pytest.raises(DicomError, match=r"ImageOrientationPatient \(0020,0037\)"):
        _load(paths, "warn")


def test_not_dicom(tmp_path: Path) -> None:
    p = tmp_path / "notes"
    p.write_text("hello")
    with pytest.raises(DicomError, match="not a DICOM file") as e:
        load_volume(str(p))
    assert str(p) in str(e.value)


def test_nifti_nans(tmp_path: Path) -> None:
    data = np.zeros((4, 5, 6), np.float32)
    data[1, 2, 3] = np.nan
    p = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), p)
    with pytest.raises(NiftiError, match="voxel data holds 1 NaN") as e:
        load_volume(str(p))
    assert str(p) in str(e.value)


def test_nifti_4d_needs_index(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6 * 3, dtype=np.float32).reshape(4, 5, 6, 3)
    p = tmp_path / "dwi.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), p)
    with pytest.raises(NiftiError, match=r"4D .*volume_index") as e:
        load_volume(str(p))
    assert str(p) in str(e.value)
    v = load_volume(str(p), volume_index=2)
    assert np.array_equal(v.data, data[..., 2])
    with pytest.raises(NiftiError, match="out of range"):
        load_volume(str(p), volume_index=3)


def test_zero_size_image(tmp_path: Path) -> None:
    p = tmp_path / "empty.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 0, 3), np.float32), np.eye(4)), p)
    with pytest.raises(NiftiError, match="zero size") as e:
        load_volume(str(p))
    assert str(p) in str(e.value)


def test_zero_rows_dicom(tmp_path: Path) -> None:
    paths = write_series(tmp_path, SeriesSpec(n_slices=1))
    ds = pydicom.dcmread(paths[0])
    ds.Rows = 0
    ds.save_as(paths[0])
    with pytest.raises(DicomError) as e:
        load_volume(str(paths[0]))
    assert str(paths[0]) in str(e.value) and "Rows (0028,0010)" in str(e.value)


def test_truncated_nifti(tmp_path: Path) -> None:
    p = tmp_path / "cut.nii"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), p)
    p.write_bytes(p.read_bytes()[:600])
    with pytest.raises(NiftiError) as e:
        load_volume(str(p))
    assert str(p) in str(e.value)


def test_corrupt_gzip_nifti_is_a_nifti_error(tmp_path: Path) -> None:
    """A damaged deflate stream (zlib.error) must become NiftiError, not escape untyped."""
    p = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), p)
    raw = p.read_bytes()
    p.write_bytes(raw[:40] + b"\x00garbage" * 10 + raw[120:])
    with pytest.raises(NiftiError, match="cannot read the NIfTI file") as e:
        load_volume(str(p))
    assert str(p) in str(e.value)


def test_bad_png(tmp_path: Path) -> None:
    p = tmp_path / "x.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(InputError, match="cannot read the image") as e:
        load_volume(str(p))
    assert str(p) in str(e.value)
