"""Small synthetic DICOM series for tests (16x16 images, written with pydicom)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def oblique_iop(deg_a: float = 20.0, deg_b: float = 12.0) -> tuple[float, ...]:
    """An oblique orientation: rotations about z then x of the axial frame."""
    a, b = np.deg2rad(deg_a), np.deg2rad(deg_b)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    m = rx @ rz
    return tuple(float(x) for x in np.concatenate([m[:, 0], m[:, 1]]))


@dataclass
class SeriesSpec:
    """Parameters of a synthetic series."""

    n_slices: int = 5
    rows: int = 16
    cols: int = 12
    iop: tuple[float, ...] = AXIAL
    pixel_spacing: tuple[float, float] = (0.7, 0.9)  # (row spacing, column spacing)
    slice_step: float = 2.5
    origin: tuple[float, float, float] = (-10.0, 20.0, 30.0)
    slope: float = 1.0
    intercept: float = -1024.0
    modality: str = "CT"
    description: str = "AXIAL 2.5"
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    study_uid: str = field(default_factory=generate_uid)
    series_uid: str = field(default_factory=generate_uid)
    frame_of_ref: str = field(default_factory=generate_uid)
    series_number: int = 2
    missing: tuple[int, ...] = ()
    tilt_shift_mm: float = 0.0  # per-slice shift along the column direction (gantry tilt)
    positions: list[np.ndarray] | None = None  # explicit positions override origin/step
    seed: int = 0

    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        row = np.array(self.iop[:3], float)
        col = np.array(self.iop[3:], float)
        return row, col, np.cross(row, col)

    def slice_positions(self) -> list[np.ndarray]:
        if self.positions is not None:
            return self.positions
        _, col, n = self.vectors()
        return [
            np.array(self.origin) + k * self.slice_step * n + k * self.tilt_shift_mm * col
            for k in range(self.n_slices)
        ]

    def stored(self) -> np.ndarray:
        """(K, rows, cols) int16 stored values, distinct per slice."""
        rng = np.random.default_rng(self.seed)
        return rng.integers(0, 2000, size=(self.n_slices, self.rows, self.cols)).astype(np.int16)


def _base(spec: SeriesSpec, sop_class: str, sop_uid: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid()
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.FrameOfReferenceUID = spec.frame_of_ref
    ds.PatientName = "Test^Patient"
    ds.PatientID = "TEST001"
    ds.Modality = spec.modality
    ds.SeriesDescription = spec.description
    ds.SeriesNumber = spec.series_number
    ds.ImageType = list(spec.image_type)
    ds.Rows = spec.rows
    ds.Columns = spec.cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    return ds


def write_series(
    folder: Path, spec: SeriesSpec, *, shuffle_names: bool = True, compress: str | None = None
) -> list[Path]:
    """Write the series as single-frame CT/MR files; returns paths in slice order (missing removed).

    File names are shuffled against slice order and InstanceNumber is reversed, so that sorting by
    either would be wrong.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stored = spec.stored()
    positions = spec.slice_positions()
    rng = np.random.default_rng(spec.seed + 1)
    names = rng.permutation(spec.n_slices) if shuffle_names else np.arange(spec.n_slices)
    out = []
    for k in range(spec.n_slices):
        if k in spec.missing:
            continue
        ds = _base(
            spec, CTImageStorage if spec.modality == "CT" else "1.2.840.10008.5.1.4.1.1.4", generate_uid()
        )
        ds.InstanceNumber = spec.n_slices - k
        ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in spec.iop]
        ds.PixelSpacing = [f"{v:g}" for v in spec.pixel_spacing]
        ds.SliceThickness = f"{spec.slice_step:g}"
        ds.RescaleSlope = f"{spec.slope:g}"
        ds.RescaleIntercept = f"{spec.intercept:g}"
        ds.PixelData = stored[k].tobytes()
        if compress:
            ds.compress(compress)
        path = folder / f"IM{spec.series_number:03d}{names[k]:05d}"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def write_enhanced(path: Path, spec: SeriesSpec, *, frame_order: list[int] | None = None) -> Path:
    """Write the series as one Enhanced CT object with per-frame positions and shared groups."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _base(spec, EnhancedCTImageStorage, generate_uid())
    stored = spec.stored()
    order = list(range(spec.n_slices)) if frame_order is None else frame_order
    ds.NumberOfFrames = len(order)
    ds.SpacingBetweenSlices = f"{spec.slice_step:g}"
    shared = Dataset()
    ori = Dataset()
    ori.ImageOrientationPatient = [f"{v:.8f}" for v in spec.iop]
    meas = Dataset()
    meas.PixelSpacing = [f"{v:g}" for v in spec.pixel_spacing]
    meas.SliceThickness = f"{spec.slice_step:g}"
    meas.SpacingBetweenSlices = f"{spec.slice_step:g}"
    pvt = Dataset()
    pvt.RescaleSlope = f"{spec.slope:g}"
    pvt.RescaleIntercept = f"{spec.intercept:g}"
    pvt.RescaleType = "HU"
    shared.PlaneOrientationSequence = [ori]
    shared.PixelMeasuresSequence = [meas]
    shared.PixelValueTransformationSequence = [pvt]
    ds.SharedFunctionalGroupsSequence = [shared]
    per = []
    positions = spec.slice_positions()
    for k in order:
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        item.PlanePositionSequence = [pp]
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = per
    ds.PixelData = np.ascontiguousarray(stored[order]).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_2d(
    path: Path, *, rows: int = 20, cols: int = 14, modality: str = "CR", photometric: str = "MONOCHROME2"
) -> Path:
    """A projection radiograph without patient position (one slice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = SeriesSpec(rows=rows, cols=cols, modality=modality)
    ds = _base(spec, "1.2.840.10008.5.1.4.1.1.1", generate_uid())
    ds.PhotometricInterpretation = photometric
    ds.PixelRepresentation = 0
    ds.ImagerPixelSpacing = ["0.15", "0.2"]
    ds.PixelData = (np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) * 3).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_localizer(folder: Path, spec: SeriesSpec) -> Path:
    """A one-file localizer (coronal scout) in the same study."""
    loc = SeriesSpec(
        n_slices=1,
        rows=20,
        cols=20,
        iop=CORONAL,
        study_uid=spec.study_uid,
        frame_of_ref=spec.frame_of_ref,
        description="Topogram 0.6",
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        series_number=1,
    )
    return write_series(folder, loc, shuffle_names=False)[0]


def write_secondary_capture(path: Path, study_uid: str | None = None) -> Path:
    """A non-image-geometry secondary capture (dose report screenshot style)."""
    spec = SeriesSpec(rows=8, cols=8, modality="OT", description="Dose Report", series_number=99)
    if study_uid:
        spec.study_uid = study_uid
    ds = _base(spec, SecondaryCaptureImageStorage, generate_uid())
    ds.PixelData = np.zeros((8, 8), np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def read_back(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path)
