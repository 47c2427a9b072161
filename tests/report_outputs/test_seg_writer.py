"""DICOM SEG and Parametric Map writers: read back with highdicom, references, geometry, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medzsad.errors import DicomError, GeometryError, OutputError
from medzsad.io.volume import SourceInfo, Volume
from medzsad.report.seg_writer import (
    ALGORITHM_NAME,
    HEAT_SCALE,
    write_dicom_seg,
    write_heatmap_parametric_map,
)


def _mask_from_seg_volume(seg: hd.seg.Segmentation, volume: Volume) -> np.ndarray:
    """Place every SEG voxel through highdicom's own geometry into the volume's (I, J, K) grid."""
    hv = seg.get_volume()
    out = np.zeros(volume.shape_ijk, np.uint8)
    idx = np.argwhere(hv.array[..., 0] > 0)
    lps = np.c_[idx, np.ones(len(idx))] @ hv.affine.T
    ijk = lps @ np.linalg.inv(volume.affine_lps).T
    rounded = np.rint(ijk[:, :3]).astype(int)
    assert np.abs(ijk[:, :3] - rounded).max() < 1e-3
    out[rounded[:, 0], rounded[:, 1], rounded[:, 2]] = 1
    return out


def test_seg_reads_back_to_the_same_voxels(tmp_path: Path, ct_volume, heat_mask) -> None:
    _, mask = heat_mask
    res = write_dicom_seg(mask, ct_volume, tmp_path / "seg.dcm", threshold=0.5)
    seg = hd.seg.segread(res.path)
    # 1) by highdicom's geometry (plane positions), independent of our frame gather
    np.testing.assert_array_equal(_mask_from_seg_volume(seg, ct_volume), mask)
    # 2) by the references: frame for source instance k is mask[:, :, k] in DICOM (row, col) order
    px = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(ct_volume.source.sop_instance_uids),
        assert_missing_frames_are_empty=True,
    )
    np.testing.assert_array_equal(px[..., 0], mask.transpose(2, 1, 0))


def test_seg_attributes(tmp_path: Path, ct_volume, ct_series, heat_mask) -> None:
    _, mask = heat_mask
    res = write_dicom_seg(mask, ct_volume, tmp_path / "seg.dcm", threshold=0.5, algorithm_version="9.9")
    ds = pydicom.dcmread(res.path)
    assert ds.SOPClassUID == pydicom.uid.SegmentationStorage
    assert ds.SegmentationType == "BINARY"
    assert "medzsad" in ds.SeriesDescription and "0.5" in ds.SeriesDescription
    assert ds.FrameOfReferenceUID == ct_series.for_uid
    assert ds.StudyInstanceUID == ct_series.study_uid
    assert ds.PatientID == "PHANTOM1"
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == ct_series.series_uid
    instances = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    referenced = {r.ReferencedSOPInstanceUID for r in instances}
    assert referenced == set(ct_volume.source.sop_instance_uids)
    seg_item = ds.SegmentSequence[0]
    assert seg_item.SegmentLabel == "anomaly"
    assert seg_item.SegmentAlgorithmType == "AUTOMATIC"
    assert seg_item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert seg_item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"
    algo = seg_item.SegmentationAlgorithmIdentificationSequence[0]
    assert (algo.AlgorithmName, algo.AlgorithmVersion) == (ALGORITHM_NAME, "9.9")
    # one frame per source slice with anomaly, each referencing that slice's instance
    slices_with_anomaly = [k for k in range(mask.shape[2]) if mask[:, :, k].any()]
    assert ds.NumberOfFrames == len(slices_with_anomaly) == 2
    frame_refs = [
        f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    assert sorted(frame_refs) == sorted(ct_volume.source.sop_instance_uids[k] for k in slices_with_anomaly)


def test_keep_empty_frames_and_empty_mask(tmp_path: Path, ct_volume, heat_mask) -> None:
    _, mask = heat_mask
    kept = write_dicom_seg(mask, ct_volume, tmp_path / "a.dcm", threshold=0.5, keep_empty_frames=True)
    assert kept.n_frames == mask.shape[2]
    empty = write_dicom_seg(np.zeros_like(mask), ct_volume, tmp_path / "b.dcm", threshold=0.5)
    assert empty.n_frames == mask.shape[2]  # an all-empty mask keeps every frame (valid object)
    seg = hd.seg.segread(empty.path)
    assert not seg.pixel_array.any()


def test_uids_are_stable_per_source_and_threshold(tmp_path: Path, ct_volume, heat_mask) -> None:
    _, mask = heat_mask
    a = write_dicom_seg(mask, ct_volume, tmp_path / "a.dcm", threshold=0.5)
    b = write_dicom_seg(mask, ct_volume, tmp_path / "b.dcm", threshold=0.5)
    c = write_dicom_seg(mask, ct_volume, tmp_path / "c.dcm", threshold=0.6)
    assert (a.series_uid, a.sop_instance_uid) == (b.series_uid, b.sop_instance_uid)
    assert c.series_uid != a.series_uid


def test_flipped_loader_grid_gives_the_same_seg(tmp_path: Path, ct_volume, heat_mask, series_lib) -> None:
    _, mask = heat_mask
    flipped_volume, flipped_mask = series_lib.flip_i(ct_volume, mask)
    ref = hd.seg.segread(write_dicom_seg(mask, ct_volume, tmp_path / "a.dcm", threshold=0.5).path)
    res = write_dicom_seg(flipped_mask, flipped_volume, tmp_path / "b.dcm", threshold=0.5)
    np.testing.assert_array_equal(hd.seg.segread(res.path).pixel_array, ref.pixel_array)


def test_multiframe_source(tmp_path: Path, ct_volume, heat_mask, series_lib) -> None:
    _, mask = heat_mask
    mf_volume = series_lib.multiframe_volume(ct_volume, tmp_path / "enhanced.dcm")
    res = write_dicom_seg(mask, mf_volume, tmp_path / "seg.dcm", threshold=0.5)
    seg = hd.seg.segread(res.path)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == mf_volume.source.series_uid
    np.testing.assert_array_equal(_mask_from_seg_volume(seg, mf_volume), mask)
    frames = sorted(set(mf_volume.source.frame_numbers))
    px = seg.get_pixels_by_source_frame(
        source_sop_instance_uid=mf_volume.source.sop_instance_uids[0],
        source_frame_numbers=frames,
        assert_missing_frames_are_empty=True,
    )
    for k, f in enumerate(mf_volume.source.frame_numbers):
        np.testing.assert_array_equal(px[frames.index(f), ..., 0], mask[:, :, k].T)


def test_parametric_map_values(tmp_path: Path, ct_volume, heat_mask) -> None:
    heat, _ = heat_mask
    res = write_heatmap_parametric_map(heat, ct_volume, tmp_path / "pm.dcm", threshold=0.5)
    ds = pydicom.dcmread(res.path)
    assert ds.SOPClassUID == pydicom.uid.ParametricMapStorage
    assert ds.FrameOfReferenceUID == ct_volume.source.frame_of_reference_uid
    rwvm = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    slope = float(rwvm.RealWorldValueSlope)
    assert slope == pytest.approx(1.0 / HEAT_SCALE)
    by_uid = {
        f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID: n
        for n, f in enumerate(ds.PerFrameFunctionalGroupsSequence)
    }
    for k, uid in enumerate(ct_volume.source.sop_instance_uids):
        values = ds.pixel_array[by_uid[uid]].astype(np.float64) * slope
        np.testing.assert_allclose(values, heat[:, :, k].T, atol=0.5 / HEAT_SCALE + 1e-7)


def test_errors_name_the_problem(tmp_path: Path, ct_volume, heat_mask) -> None:
    _, mask = heat_mask
    with pytest.raises(OutputError, match="shape"):
        write_dicom_seg(mask[:-1], ct_volume, tmp_path / "x.dcm", threshold=0.5)
    nifti_src = dataclasses.replace(ct_volume, source=SourceInfo(paths=("/data/a.nii.gz",), kind="nifti"))
    with pytest.raises(DicomError, match="nifti"):
        write_dicom_seg(mask, nifti_src, tmp_path / "x.dcm", threshold=0.5)
    shifted = ct_volume.affine_ras.copy()
    shifted[:3, 3] += 0.5 * ct_volume.affine_ras[:3, 0]  # half a voxel along i: off the grid
    with pytest.raises(GeometryError, match="off the volume grid"):
        off_grid = dataclasses.replace(ct_volume, affine_ras=shifted)
        write_dicom_seg(mask, off_grid, tmp_path / "x.dcm", threshold=0.5)
    wrong_uids = ("1.2.3",) * ct_volume.shape_ijk[2]
    changed = dataclasses.replace(
        ct_volume, source=dataclasses.replace(ct_volume.source, sop_instance_uids=wrong_uids)
    )
    with pytest.raises(DicomError, match=r"SOPInstanceUID \(0008,0018\)"):
        write_dicom_seg(mask, changed, tmp_path / "x.dcm", threshold=0.5)
    assert not list(tmp_path.iterdir())  # nothing half-written
