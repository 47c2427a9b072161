"""Real sample files load offline: pydicom's bundled files, pydicom-data, nibabel's anatomical.nii."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from nibabel.testing import data_path
from pydicom.data import get_testdata_file

from medzsad.io.discovery import discover
from medzsad.io.readers import load_volume
from medzsad.io.series_selection import select_series

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent


def rescaled(name: str) -> np.ndarray:
    ds = pydicom.dcmread(get_testdata_file(name))
    a = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0)
    )
    return a.astype(np.float32)


@pytest.mark.parametrize(
    "name",
    ["CT_small.dcm", "693_UNCI.dcm", "693_J2KR.dcm", "MR2_J2KR.dcm", "MR2_UNCI.dcm", "MR_small_RLE.dcm"],
)
def test_single_slice_matches_simpleitk(name: str) -> None:
    path = get_testdata_file(name)
    v = load_volume(path)
    img = sitk.ReadImage(path)
    np.testing.assert_allclose(v.origin_lps_mm, img.GetOrigin(), atol=1e-4)
    # one slice has no neighbour: the k spacing is SpacingBetweenSlices, else SliceThickness
    # (GDCM uses 1 mm for MR without SpacingBetweenSlices), so only i, j spacing is compared
    np.testing.assert_allclose(v.spacing_mm[:2], img.GetSpacing()[:2], atol=1e-4)
    np.testing.assert_allclose(v.direction_lps.ravel(), img.GetDirection(), atol=1e-4)
    assert np.array_equal(v.data[:, :, 0], rescaled(name).T)


def test_ct_512_hu() -> None:
    v = load_volume(get_testdata_file("693_J2KR.dcm"))
    assert v.shape_ijk == (512, 512, 1) and v.modality == "CT"
    assert v.data.min() == -3024.0  # air/outside FOV in HU after RescaleIntercept -1024


def test_mr_1024_lossless_j2k_equals_uncompressed() -> None:
    a = load_volume(get_testdata_file("MR2_J2KR.dcm"))
    b = load_volume(get_testdata_file("MR2_UNCR.dcm"))
    assert a.shape_ijk == (1024, 1024, 1)
    assert np.array_equal(a.data, b.data)


def test_enhanced_ct_per_frame_geometry() -> None:
    path = get_testdata_file("eCT_Supplemental.dcm")
    v = load_volume(path)
    ds = pydicom.dcmread(path)
    ipp = [
        np.array([float(x) for x in f.PlanePositionSequence[0].ImagePositionPatient])
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    assert v.shape_ijk == (512, 512, 2)
    # IOP row (-1, 0, 0) x col (0, 1, 0) = normal (0, 0, -1): ascending along the normal is
    # descending z, so frame 2 (z = -149) comes first
    np.testing.assert_allclose(v.slice_positions_lps_mm, [ipp[1], ipp[0]], atol=1e-6)
    np.testing.assert_allclose(v.direction_lps, [[-1, 0, 0], [0, 1, 0], [0, 0, -1]], atol=1e-9)
    assert v.source.frame_numbers == (2, 1)
    np.testing.assert_allclose(v.spacing_mm, (0.388672, 0.388672, 10.0), atol=1e-6)
    expected = ds.pixel_array[::-1].astype(np.float64) - 1024.0
    assert np.array_equal(v.data, expected.astype(np.float32).transpose(2, 1, 0))


@pytest.mark.parametrize(
    ("compressed", "reference"),
    [
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("emri_small_RLE.dcm", "emri_small.dcm"),
        ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
        ("JPEG2000.dcm", "JPEG2000_UNC.dcm"),
    ],
)
def test_lossless_codecs_equal_uncompressed(compressed: str, reference: str) -> None:
    a = load_volume(get_testdata_file(compressed))
    b = load_volume(get_testdata_file(reference))
    assert np.array_equal(a.data, b.data)
    np.testing.assert_allclose(a.affine_ras, b.affine_ras)


def test_jpeg_ls_near_lossless_and_12bit_jpeg_extended() -> None:
    v = load_volume(get_testdata_file("JPEGLSNearLossless_16.dcm"))
    assert v.shape_ijk == (10, 50, 1) and v.data.max() == 65535
    v12 = load_volume(get_testdata_file("JPGExtended.dcm"))
    assert v12.shape_ijk == (256, 1024, 1)
    assert 0 < v12.data.max() < 4096  # 12-bit


@pytest.mark.parametrize("name", ["RG1_J2KR.dcm", "77654033/CR1/6154"])
def test_2d_radiograph_one_slice_monochrome1_inverted_as_simpleitk_does(name: str) -> None:
    """Inverted across the stored range, then rescaled: the same stored value reads the same everywhere."""
    path = get_testdata_file(name)
    v = load_volume(path)
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and v.shape_ijk == (ds.Columns, ds.Rows, 1)
    itk = sitk.GetArrayFromImage(sitk.ReadImage(path)).astype(np.float64)
    np.testing.assert_allclose(v.data[:, :, 0], itk.reshape(itk.shape[-2:]).T, rtol=0, atol=1e-3)
    raw = ds.pixel_array.astype(np.float64)  # and by the definition: bright is dense
    expected = ((2**ds.BitsStored - 1) - raw) * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0)
    )
    np.testing.assert_allclose(v.data[:, :, 0], expected.T, rtol=0, atol=1e-3)


def test_dicomdir_sets() -> None:
    found = discover(TEST_FILES / "dicomdirtests" / "DICOMDIR")
    assert len(found.studies) == 6 and not found.skipped
    assert found.n_files == 31
    assert sum(len(s.series) for s in found.studies) == 13
    tiny = discover(TEST_FILES / "dicomdirtests" / "TINY_ALPHA" / "DICOMDIR")
    assert len(tiny.studies) >= 1 and all(s.kind == "dicom" for s in tiny.studies)


def test_ct5n_series_matches_simpleitk() -> None:
    folder = TEST_FILES / "dicomdirtests" / "98892001" / "CT5N"
    study = discover(folder).studies[0]
    chosen = select_series(study).require()
    v = load_volume(chosen)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    assert v.shape_ijk == (16, 16, 5)
    np.testing.assert_allclose(v.origin_lps_mm, img.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(v.spacing_mm, img.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(v.direction_lps.ravel(), img.GetDirection(), atol=1e-4)
    assert np.array_equal(v.data, sitk.GetArrayFromImage(img).transpose(2, 1, 0).astype(np.float32))


def test_nibabel_anatomical() -> None:
    path = os.path.join(data_path, "anatomical.nii")
    v = load_volume(path)
    img = nib.load(path)
    assert v.source.kind == "nifti"
    np.testing.assert_array_equal(v.affine_ras, img.affine)
    assert np.array_equal(v.data, img.get_fdata(dtype=np.float32))
