"""Write a volume as a DICOM series with exact geometry (demo data and test fixtures).

The volume follows :class:`medzsad.io.volume.Volume`'s convention: ``data[i, j, k]`` where ``i`` runs
along a row (ImageOrientationPatient row cosine), ``j`` down a column and ``k`` over slices, and
``affine_lps`` maps ``(i, j, k, 1)`` to LPS mm. Each slice ``k`` becomes one instance whose pixel
array is ``data[:, :, k].T`` (rows = ``j``, columns = ``i``). UIDs are derived from a seed with
:func:`pydicom.uid.generate_uid` entropy sources, so the same call writes identical files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from medzsad.errors import GeometryError
from medzsad.fileio import write_bytes

__all__ = ["SeriesSpec", "write_dicom_series", "MR_IMAGE_STORAGE", "CT_IMAGE_STORAGE"]

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass(frozen=True)
class SeriesSpec:
    """Header content of a synthetic series (no real patient data).

    Attributes:
        modality: ``MR`` or ``CT``.
        uid_seed: Seed of every UID of the series (same seed, same UIDs).
        study_seed: Seed of the StudyInstanceUID (several series may share a study).
        patient_id: PatientID (synthetic).
        series_description: SeriesDescription.
        rescale_intercept: Stored value -> real value offset (CT: HU = stored - 1024).
        window_center: WindowCenter.
        window_width: WindowWidth.
        body_part: BodyPartExamined (left out when empty).
    """

    modality: str
    uid_seed: str
    study_seed: str
    patient_id: str = "DEMO0001"
    series_description: str = "demo"
    rescale_intercept: float = 0.0
    window_center: float = 500.0
    window_width: float = 1000.0
    body_part: str = ""


def _uid(*parts: str) -> UID:
    return generate_uid(entropy_srcs=["medzsad-demo", *parts])


def _fmt(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".") or "0"


def _base_dataset(spec: SeriesSpec, shape: tuple[int, int], spacing: tuple[float, float]) -> Dataset:
    ds = Dataset()
    sop_class = MR_IMAGE_STORAGE if spec.modality == "MR" else CT_IMAGE_STORAGE
    ds.SOPClassUID = sop_class
    ds.PatientName = "DEMO^PHANTOM"
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20000101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.Modality = spec.modality
    ds.Manufacturer = "medzsad demo"
    ds.StudyInstanceUID = _uid("study", spec.study_seed)
    ds.SeriesInstanceUID = _uid("series", spec.uid_seed)
    ds.FrameOfReferenceUID = _uid("for", spec.uid_seed)
    ds.PositionReferenceIndicator = ""
    ds.SeriesDescription = spec.series_description
    if spec.body_part:
        ds.BodyPartExamined = spec.body_part
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.Rows, ds.Columns = shape
    ds.PixelSpacing = [_fmt(spacing[0]), _fmt(spacing[1])]  # row spacing (j), column spacing (i)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = _fmt(spec.rescale_intercept)
    ds.RescaleSlope = "1"
    if spec.modality == "CT":
        ds.RescaleType = "HU"
        ds.KVP = "120"
    else:
        ds.ScanningSequence = "GR"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "3D"
        ds.MagneticFieldStrength = "3"
    ds.WindowCenter = _fmt(spec.window_center)
    ds.WindowWidth = _fmt(spec.window_width)
    return ds


def write_dicom_series(
    data: np.ndarray, affine_lps: np.ndarray, out_dir: str | Path, spec: SeriesSpec
) -> list[Path]:
    """Write ``data`` as one DICOM instance per slice ``k``.

    Args:
        data: ``(I, J, K)`` stored values in 0..65535 (real value = stored + ``rescale_intercept``).
        affine_lps: ``(4, 4)`` voxel -> LPS mm; columns 0 and 1 must be orthogonal (no in-plane
            shear), column 2 gives the slice step (any tilt is written as given).
        out_dir: Folder to create; files are ``IM0001.dcm``, ...
        spec: Header content.

    Returns:
        The written files in slice order.

    Raises:
        GeometryError: The affine has in-plane shear or zero spacing.
    """
    arr = np.asarray(data)
    a = np.asarray(affine_lps, dtype=np.float64)
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    if np.any(spacing <= 0):
        raise GeometryError(f"affine has zero spacing {spacing}; cannot write DICOM geometry")
    row_cos, col_cos = a[:3, 0] / spacing[0], a[:3, 1] / spacing[1]
    if abs(float(row_cos @ col_cos)) > 1e-6:
        raise GeometryError("affine columns 0 and 1 are not orthogonal; DICOM pixels must be rectangular")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = _base_dataset(spec, (arr.shape[1], arr.shape[0]), (float(spacing[1]), float(spacing[0])))
    base.ImageOrientationPatient = [_fmt(v) for v in (*row_cos, *col_cos)]
    base.SliceThickness = _fmt(float(spacing[2]))
    base.SpacingBetweenSlices = _fmt(float(spacing[2]))
    stored = np.clip(np.rint(arr), 0, 65535).astype(np.uint16)
    normal = np.cross(row_cos, col_cos)
    paths = []
    for k in range(arr.shape[2]):
        ds = base.copy()
        ds.SOPInstanceUID = _uid("sop", spec.uid_seed, str(k))
        ds.InstanceNumber = k + 1
        pos = a[:3, :3] @ np.array([0.0, 0.0, float(k)]) + a[:3, 3]
        ds.ImagePositionPatient = [_fmt(v) for v in pos]
        ds.SliceLocation = _fmt(float(pos @ normal))
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = _uid("implementation")
        ds.file_meta = meta
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        paths.append(write_bytes(out / f"IM{k + 1:04d}.dcm", buf.getvalue()))
    return paths
