"""The one in-memory scan type every reader returns and every writer consumes.

Axis convention (nibabel's): ``data`` is indexed ``[i, j, k]`` and ``affine_ras`` maps the voxel
index ``(i, j, k, 1)`` to RAS millimetres. For a DICOM series ``i`` runs along a row (the column
index, direction = ImageOrientationPatient row cosine), ``j`` down the columns (row index), and
``k`` over slices sorted by position along the slice normal. SimpleITK's ``GetArrayFromImage``
returns ``[k, j, i]``; ``data`` is its transpose ``(2, 1, 0)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LPS_TO_RAS", "SourceInfo", "Volume"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class SourceInfo:
    """Where a volume came from.

    Attributes:
        paths: Source files (DICOM instances in slice order ``k``, or the one NIfTI/image file).
        kind: ``"dicom"``, ``"nifti"``, ``"itk"`` (NRRD/MHA through SimpleITK) or ``"image2d"``.
        study_uid: StudyInstanceUID (DICOM) or a stable id derived from the path.
        series_uid: SeriesInstanceUID (DICOM) or a stable id derived from the path.
        sop_instance_uids: SOPInstanceUID per slice ``k`` (DICOM; empty otherwise). For a
            multi-frame object every entry is the same UID and ``frame_numbers`` tells the frame.
        frame_numbers: 1-based frame number per slice ``k`` for multi-frame objects, else empty.
        frame_of_reference_uid: FrameOfReferenceUID (DICOM) or ``""``.
        sop_class_uid: SOPClassUID of the source instances (DICOM) or ``""``.
        series_description: SeriesDescription or ``""``.
        manufacturer: Manufacturer (0008,0070) (DICOM) or ``""``.
        model_name: ManufacturerModelName (0008,1090) (DICOM) or ``""``.
        patient_geometry: The voxels are placed in the patient from the headers (False for DICOM
            images without ImagePositionPatient (0020,0032): radiographs, ultrasound, secondary
            captures, placed at the origin as SimpleITK reads them; and for 2D image files).
    """

    paths: tuple[str, ...]
    kind: str
    study_uid: str = ""
    series_uid: str = ""
    sop_instance_uids: tuple[str, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    frame_of_reference_uid: str = ""
    sop_class_uid: str = ""
    series_description: str = ""
    manufacturer: str = ""
    model_name: str = ""
    patient_geometry: bool = True


@dataclass(frozen=True)
class Volume:
    """A scan in memory.

    Attributes:
        data: ``(I, J, K)`` voxel array, float32 (HU for CT after rescale) or the native dtype.
        affine_ras: ``(4, 4)`` float64 voxel ``(i, j, k)`` -> RAS mm (nibabel convention).
        modality: DICOM Modality (``CT``, ``MR``, ...) or ``""`` when unknown.
        source: Where it came from.
        slice_positions_lps_mm: ``(K, 3)`` float64 position of voxel ``(0, 0, k)`` in LPS mm.
        warnings: Problems found while loading that did not stop it (missing slice, tilt, ...).
    """

    data: np.ndarray
    affine_ras: np.ndarray
    modality: str
    source: SourceInfo
    slice_positions_lps_mm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    warnings: tuple[str, ...] = ()

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        """Voxel grid shape ``(I, J, K)``."""
        i, j, k = self.data.shape[:3]
        return int(i), int(j), int(k)

    @property
    def affine_lps(self) -> np.ndarray:
        """``(4, 4)`` voxel -> LPS mm (ITK/DICOM convention)."""
        return LPS_TO_RAS @ self.affine_ras

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel spacing along ``i, j, k`` in mm (column norms of the affine)."""
        s = np.linalg.norm(self.affine_ras[:3, :3], axis=0)
        return float(s[0]), float(s[1]), float(s[2])

    @property
    def origin_lps_mm(self) -> tuple[float, float, float]:
        """LPS position of voxel ``(0, 0, 0)`` (ITK origin)."""
        o = self.affine_lps[:3, 3]
        return float(o[0]), float(o[1]), float(o[2])

    @property
    def direction_lps(self) -> np.ndarray:
        """``(3, 3)`` direction cosines in LPS, one column per voxel axis (ITK direction)."""
        m = self.affine_lps[:3, :3]
        return m / np.linalg.norm(m, axis=0, keepdims=True)
