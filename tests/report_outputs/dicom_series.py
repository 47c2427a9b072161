"""Tiny synthetic DICOM CT series (and the matching Volume) for the review-output tests.

The series is built with pydicom: CT Image Storage, proper UIDs, an oblique orientation, an
anisotropic pixel spacing, shuffled file names, int16 pixels with a rescale. The Volume is built
from SimpleITK's ImageSeriesReader geometry (what medzsad's DICOM loader must agree with).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medzsad.io.volume import LPS_TO_RAS, SourceInfo, Volume

ROWS, COLS, N_SLICES = 12, 16, 6
PIXEL_SPACING = (0.8, 0.7)  # row spacing (between rows, along j), column spacing (along i)
SLICE_STEP = 2.5


@dataclass(frozen=True)
class Series:
    """A written series: its files (shuffled order on disk) and ground-truth geometry."""

    folder: Path
    files: list[Path]
    study_uid: str
    series_uid: str
    for_uid: str
    row_cos: np.ndarray
    col_cos: np.ndarray
    normal: np.ndarray
    origin_lps: np.ndarray


def _orientation(tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    t, a = np.deg2rad(tilt_deg), 0.3
    row = np.array([np.cos(t), np.sin(t), 0.0])
    col = np.array([-np.sin(t) * np.cos(a), np.cos(t) * np.cos(a), -np.sin(a)])
    return row, col


def write_ct_series(folder: Path, *, tilt_deg: float = 15.0, seed: int = 0) -> Series:
    """Write a ``COLS x ROWS x N_SLICES`` CT series with shuffled file names into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    study_uid, series_uid, for_uid = generate_uid(), generate_uid(), generate_uid()
    row, col = _orientation(tilt_deg)
    normal = np.cross(row, col)
    origin = np.array([-30.0, 12.5, 40.0])
    order = list(range(N_SLICES))
    random.Random(seed).shuffle(order)
    files = []
    for n, k in enumerate(order):
        ipp = origin + k * SLICE_STEP * normal
        px = (rng.integers(0, 200, size=(ROWS, COLS)) + 10 * k).astype(np.int16)
        path = folder / f"IM{n:04d}.dcm"
        _write_slice(path, px, ipp, row, col, k, study_uid, series_uid, for_uid)
        files.append(path)
    return Series(folder, files, study_uid, series_uid, for_uid, row, col, normal, origin)


def _write_slice(
    path: Path,
    px: np.ndarray,
    ipp: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    k: int,
    study_uid: str,
    series_uid: str,
    for_uid: str,
) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, for_uid
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Phantom", "PHANTOM1", "", "O"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20240101", "120000", "ACC1", "1"
    ds.ReferringPhysicianName = ""
    ds.SeriesDate, ds.SeriesTime, ds.ContentDate, ds.ContentTime = "20240101", "120000", "20240101", "120000"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 3, k + 1
    ds.SeriesDescription = "synthetic abdomen"
    ds.Manufacturer, ds.PositionReferenceIndicator = "medzsad-tests", ""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *col)]
    ds.PixelSpacing = [PIXEL_SPACING[0], PIXEL_SPACING[1]]
    ds.SliceThickness = SLICE_STEP
    ds.KVP, ds.AcquisitionNumber = 120, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = px.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.PixelData = px.tobytes()
    ds.save_as(path, enforce_file_format=True)


def volume_from_series(series: Series) -> Volume:
    """The Volume medzsad's loader must produce: SimpleITK geometry, data ``[i, j, k]``."""
    reader = sitk.ImageSeriesReader()
    names = list(reader.GetGDCMSeriesFileNames(str(series.folder), series.series_uid))
    reader.SetFileNames(names)
    img = reader.Execute()
    data = sitk.GetArrayFromImage(img).transpose(2, 1, 0).astype(np.float32)
    direction = np.array(img.GetDirection()).reshape(3, 3)
    affine_lps = np.eye(4)
    affine_lps[:3, :3] = direction * np.array(img.GetSpacing())
    affine_lps[:3, 3] = img.GetOrigin()
    dss = [pydicom.dcmread(n, stop_before_pixels=True) for n in names]
    source = SourceInfo(
        paths=tuple(names),
        kind="dicom",
        study_uid=series.study_uid,
        series_uid=series.series_uid,
        sop_instance_uids=tuple(str(d.SOPInstanceUID) for d in dss),
        frame_of_reference_uid=series.for_uid,
        sop_class_uid=str(dss[0].SOPClassUID),
        series_description=str(dss[0].SeriesDescription),
    )
    positions = np.array([[float(v) for v in d.ImagePositionPatient] for d in dss])
    return Volume(data, LPS_TO_RAS @ affine_lps, "CT", source, positions)


def blob_mask(shape: tuple[int, int, int], *, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A heat map in [0, 1] with two hot spots and its ``>= 0.5`` mask, both ``(I, J, K)``."""
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    heat = 0.9 * np.exp(-((i - 4) ** 2 + (j - 3) ** 2) / 8.0 - 2.0 * (k - 1) ** 2)
    heat += 0.8 * np.exp(-((i - 11) ** 2 + (j - 8) ** 2) / 6.0 - 2.0 * (k - 4) ** 2)
    heat = np.clip(heat + np.random.default_rng(seed).uniform(0, 0.02, shape), 0, 1).astype(np.float32)
    return heat, (heat >= 0.5).astype(np.uint8)


def multiframe_volume(volume: Volume, out_path: Path) -> Volume:
    """Convert the series to one Legacy Converted Enhanced CT object; the Volume pointing at it."""
    import highdicom as hd

    dss = [pydicom.dcmread(p) for p in volume.source.paths]
    mf = hd.legacy.LegacyConvertedEnhancedCTImage(
        dss, series_instance_uid=hd.UID(), series_number=4, sop_instance_uid=hd.UID(), instance_number=1
    )
    mf.save_as(out_path)
    positions = [
        np.array([float(x) for x in f.PlanePositionSequence[0].ImagePositionPatient])
        for f in mf.PerFrameFunctionalGroupsSequence
    ]
    frame_numbers = []
    for pos in volume.slice_positions_lps_mm:
        frame_numbers.append(1 + int(np.argmin([np.linalg.norm(p - pos) for p in positions])))
    k = volume.shape_ijk[2]
    source = SourceInfo(
        paths=(str(out_path),) * k,
        kind="dicom",
        study_uid=volume.source.study_uid,
        series_uid=str(mf.SeriesInstanceUID),
        sop_instance_uids=(str(mf.SOPInstanceUID),) * k,
        frame_numbers=tuple(frame_numbers),
        frame_of_reference_uid=volume.source.frame_of_reference_uid,
        sop_class_uid=str(mf.SOPClassUID),
    )
    return Volume(volume.data, volume.affine_ras, "CT", source, volume.slice_positions_lps_mm)


def flip_i(volume: Volume, array: np.ndarray) -> tuple[Volume, np.ndarray]:
    """The same scan with axis ``i`` reversed (as a loader reorienting to RAS might do)."""
    n = volume.shape_ijk[0]
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, n - 1
    affine = volume.affine_ras @ flip
    flipped = Volume(volume.data[::-1].copy(), affine, "CT", volume.source, volume.slice_positions_lps_mm)
    return flipped, np.ascontiguousarray(array[::-1])
