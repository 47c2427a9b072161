"""Header summary of one series (what discovery knows without reading pixel data)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np

from medzsad.errors import ImageError, NiftiError, UnsupportedInputError
from medzsad.io.dicom_objects import MEDZSAD_NIFTI_DESCRIP
from medzsad.io.geometry import Plane, orientation_code, plane_of_normal
from medzsad.io.guard import foreign_errors
from medzsad.io.image2d import check_image_size
from medzsad.io.nifti import path_id
from medzsad.io.nifti_header import check_nifti_header

__all__ = ["SeriesRef", "file_series"]


@dataclass(frozen=True)
class SeriesRef:
    """One series as discovery saw it.

    Attributes:
        series_uid: SeriesInstanceUID (DICOM) or a stable id derived from the path.
        study_uid: StudyInstanceUID (DICOM) or the same id as ``series_uid``.
        kind: ``dicom``, ``nifti``, ``itk`` or ``image2d``.
        files: The files (archive members allowed), in discovery order (not slice order).
        modality: Modality (``""`` when unknown, e.g. NIfTI).
        description: SeriesDescription.
        series_number: SeriesNumber, or ``None``.
        image_type: ImageType values (e.g. ``ORIGINAL, PRIMARY, LOCALIZER``).
        n_instances: Number of instances (distinct SOPInstanceUIDs; ``files`` may hold copies).
        n_slices: Number of 2D slices (frames of multi-frame objects counted; K of a volume file).
        plane: ``axial``, ``coronal``, ``sagittal``, ``unknown`` or ``mixed`` (several orientations).
        oblique: True when the orientation is not aligned with the patient axes.
        slice_thickness_mm: SliceThickness (or the slice spacing of a volume file), or ``None``.
        pixel_spacing_mm: ``(row spacing, column spacing)`` or ``None``.
        rows: Rows (``J``).
        cols: Columns (``I``).
        sop_class_uid: SOPClassUID of the first instance.
        is_image: False for objects without pixel data (SR, KO, RTSTRUCT, ...).
        body_part: BodyPartExamined.
        transfer_syntaxes: Transfer syntax UIDs seen.
        orientation: Orientation code of a volume file (``RAS``...), ``""`` for DICOM.
        not_candidate: Why the series is never scored (a SEG, RT, SR, ... object, an output of
            medzsad, a header-only copy; see :mod:`medzsad.io.dicom_objects`), ``""`` for a
            candidate.
        secondary: A secondary capture (ranked after every other candidate).
    """

    series_uid: str
    study_uid: str
    kind: str
    files: tuple[str, ...]
    modality: str = ""
    description: str = ""
    series_number: int | None = None
    image_type: tuple[str, ...] = ()
    n_instances: int = 1
    n_slices: int = 1
    plane: str = Plane.UNKNOWN.value
    oblique: bool = False
    slice_thickness_mm: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    rows: int = 0
    cols: int = 0
    sop_class_uid: str = ""
    is_image: bool = True
    body_part: str = ""
    transfer_syntaxes: tuple[str, ...] = ()
    orientation: str = ""
    not_candidate: str = ""
    secondary: bool = False

    @property
    def candidate(self) -> bool:
        """True when the series can be chosen for scoring (an image that is not derived)."""
        return not self.not_candidate

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (no file list, only its length)."""
        return {
            "series_uid": self.series_uid,
            "kind": self.kind,
            "modality": self.modality,
            "description": self.description,
            "series_number": self.series_number,
            "image_type": list(self.image_type),
            "n_instances": self.n_instances,
            "n_slices": self.n_slices,
            "plane": self.plane,
            "oblique": self.oblique,
            "slice_thickness_mm": self.slice_thickness_mm,
            "pixel_spacing_mm": list(self.pixel_spacing_mm) if self.pixel_spacing_mm else None,
            "rows": self.rows,
            "cols": self.cols,
            "is_image": self.is_image,
            "candidate": self.candidate,
            "not_candidate": self.not_candidate,
            "n_files": len(self.files),
        }


def _medzsad_output(nimg: Any) -> str:
    """Why a NIfTI file is an output of medzsad (its ``descrip``), or ``""``."""
    try:
        descrip = bytes(nimg.header["descrip"]).split(b"\x00")[0].decode("ascii", "replace")
    except (KeyError, TypeError, ValueError):
        return ""
    if not descrip.startswith(MEDZSAD_NIFTI_DESCRIP):
        return ""
    return f"written by medzsad (NIfTI descrip {descrip!r}): an output of an earlier run, never scored"


def _volume_summary(path: str, kind: str) -> tuple[tuple[int, ...], np.ndarray, str]:
    """``(shape, affine_ras, why it is never scored)`` of a volume file from its header."""
    if kind == "nifti":
        check_nifti_header(path)
        nimg: Any = nib.load(path)
        if nimg.affine is None:
            raise UnsupportedInputError(f"{path}: {type(nimg).__name__} has no voxel-to-world affine")
        shape = tuple(int(x) for x in nimg.shape)
        return shape, np.asarray(nimg.affine, dtype=np.float64), _medzsad_output(nimg)
    if kind == "itk":
        import SimpleITK as sitk

        from medzsad.io.itk_headers import check_itk_header
        from medzsad.io.itk_image import affine_lps_of

        check_itk_header(path)

        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
        img = sitk.Image([1] * reader.GetDimension(), sitk.sitkUInt8)
        img.SetSpacing(reader.GetSpacing())
        img.SetOrigin(reader.GetOrigin())
        img.SetDirection(reader.GetDirection())
        a = affine_lps_of(img)
        if reader.GetDimension() == 2:
            a[2, 2] = 1.0
        return tuple(int(x) for x in reader.GetSize()), np.diag([-1.0, -1.0, 1.0, 1.0]) @ a, ""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    check_image_size(path, w, h, 4)
    return (w, h, 1), np.diag([-1.0, -1.0, 1.0, 1.0]), ""


def file_series(path: str, kind: str) -> SeriesRef:
    """The one series of a NIfTI/NRRD/MHA/2D image file, from its header.

    Raises:
        InputError: The header cannot be read.
    """
    error = ImageError if kind == "image2d" else NiftiError
    with foreign_errors(path, f"read the {kind} header", error):
        shape, affine, not_candidate = _volume_summary(path, kind)
        if not np.all(np.isfinite(affine)):
            raise error(f"{path}: the voxel-to-world affine of the header is not finite")
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    uid = path_id(path)
    k = shape[2] if len(shape) > 2 else 1
    return SeriesRef(
        series_uid=uid,
        study_uid=uid,
        kind=kind,
        files=(os.path.abspath(path),),
        description=os.path.basename(path),
        n_slices=int(k),
        plane=plane_of_normal(affine[:3, 2]).value if len(shape) > 2 and k > 1 else Plane.UNKNOWN.value,
        slice_thickness_mm=float(zooms[2]),
        pixel_spacing_mm=(float(zooms[1]), float(zooms[0])),
        rows=int(shape[1]) if len(shape) > 1 else 1,
        cols=int(shape[0]),
        orientation=orientation_code(affine) if abs(np.linalg.det(affine[:3, :3])) > 0 else "",
        not_candidate=not_candidate,
    )
