"""Our DICOM geometry and voxels equal SimpleITK's ImageSeriesReader for every synthetic case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_factory import SAGITTAL, SeriesSpec, oblique_iop, write_enhanced, write_localizer, write_series
from pydicom.uid import JPEG2000Lossless, RLELossless

from medzsad.io.discovery import discover
from medzsad.io.readers import load_volume
from medzsad.io.series_selection import select_series
from medzsad.io.volume import Volume

TOL_MM = 1e-4


def itk_series(folder: Path, series_uid: str = "") -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    names = (
        reader.GetGDCMSeriesFileNames(str(folder), series_uid)
        if series_uid
        else reader.GetGDCMSeriesFileNames(str(folder))
    )
    reader.SetFileNames(names)
    return reader.Execute()


def assert_same_as_itk(v: Volume, image: sitk.Image) -> None:
    np.testing.assert_allclose(v.origin_lps_mm, image.GetOrigin(), atol=TOL_MM)
    np.testing.assert_allclose(v.spacing_mm, image.GetSpacing(), atol=TOL_MM)
    np.testing.assert_allclose(v.direction_lps.ravel(), np.asarray(image.GetDirection()), atol=TOL_MM)
    itk_ijk = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    assert v.data.shape == itk_ijk.shape
    assert np.array_equal(v.data, itk_ijk.astype(np.float32))


CASES = {
    "shuffled_axial": (SeriesSpec(), {}),
    "oblique": (SeriesSpec(iop=oblique_iop()), {}),
    "anisotropic_nonunit": (SeriesSpec(pixel_spacing=(0.43, 1.7), slice_step=3.3), {}),
    "slope_not_one": (SeriesSpec(slope=2.5, intercept=-7.25), {}),
    "missing_slice": (SeriesSpec(n_slices=7, missing=(4,)), {}),
    "sagittal_acquisition": (SeriesSpec(iop=SAGITTAL, pixel_spacing=(1.1, 0.6)), {}),
    "rle_compressed": (SeriesSpec(iop=oblique_iop(5, 30)), {"compress": RLELossless}),
    "jpeg2000_compressed": (SeriesSpec(rows=64, cols=64, n_slices=3), {"compress": JPEG2000Lossless}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_series_matches_simpleitk(tmp_path: Path, case: str) -> None:
    spec, kw = CASES[case]
    paths = write_series(tmp_path / case, spec, **kw)
    v = load_volume(discover(tmp_path / case).studies[0].series[0])
    assert_same_as_itk(v, itk_series(tmp_path / case))
    # sorted along the normal: stored slice order, not file name order or InstanceNumber
    _, _, n = spec.vectors()
    d = v.slice_positions_lps_mm @ n
    assert np.all(np.diff(d) > 0)
    assert [Path(p).name for p in v.source.paths] == [p.name for p in paths]
    if case == "slope_not_one":
        assert np.array_equal(
            v.data[..., 0], (spec.stored()[0].astype(np.float64) * 2.5 - 7.25).T.astype(np.float32)
        )
    if case == "missing_slice":
        assert any("missing slice" in w for w in v.warnings)


def test_enhanced_multiframe_matches_simpleitk(tmp_path: Path) -> None:
    spec = SeriesSpec(iop=oblique_iop(), slope=1.0, intercept=-1024.0, pixel_spacing=(0.6, 0.8))
    path = write_enhanced(tmp_path / "enhanced.dcm", spec)
    v = load_volume(str(path))
    assert_same_as_itk(v, sitk.ReadImage(str(path)))
    assert v.source.frame_numbers == (1, 2, 3, 4, 5)


def test_enhanced_frames_out_of_order_sorted_by_position(tmp_path: Path) -> None:
    spec = SeriesSpec()
    ordered = load_volume(str(write_enhanced(tmp_path / "a.dcm", spec)))
    shuffled = load_volume(str(write_enhanced(tmp_path / "b.dcm", spec, frame_order=[3, 0, 4, 2, 1])))
    assert np.array_equal(ordered.data, shuffled.data)
    np.testing.assert_allclose(ordered.affine_ras, shuffled.affine_ras, atol=1e-9)
    assert shuffled.source.frame_numbers == (2, 5, 4, 1, 3)


def test_two_series_and_localizer_in_one_folder(tmp_path: Path) -> None:
    thin = SeriesSpec(slice_step=1.0, n_slices=6, description="AXIAL 1.0", series_number=3, seed=1)
    thick = SeriesSpec(
        slice_step=5.0, n_slices=4, description="AXIAL 5.0", study_uid=thin.study_uid, series_number=4, seed=2
    )
    folder = tmp_path / "export"
    write_series(folder / "a", thin)
    write_series(folder / "a", thick)  # same folder, names may interleave
    write_localizer(folder / "b", thin)
    found = discover(folder)
    assert found.n_files == 6 + 4 + 1
    assert len(found.studies) == 1
    study = found.studies[0]
    assert len(study.series) == 3
    sel = select_series(study)
    assert sel.chosen is not None and sel.chosen.series_uid == thin.series_uid
    reasons = {r.series.series_uid: r.reason for r in sel.rejected}
    assert "LOCALIZER" in [s for s in study.series if s.n_slices == 1][0].image_type
    assert any("LOCALIZER" in r for r in reasons.values())
    assert "ranks first by thinnest" in reasons[thick.series_uid]
    v = load_volume(sel.chosen)
    assert v.shape_ijk[2] == 6
    assert_same_as_itk(v, itk_series(folder / "a", thin.series_uid))
    v_thick = load_volume([s for s in study.series if s.series_uid == thick.series_uid][0])
    assert_same_as_itk(v_thick, itk_series(folder / "a", thick.series_uid))
