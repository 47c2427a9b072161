"""Read one study into a :class:`~medzsad.io.volume.Volume` (NIfTI/NRRD/MHA file or DICOM folder).

DICOM folders are read with SimpleITK/GDCM series grouping; when a folder holds several series the
pipeline's series rules choose one (modality, description include/exclude, minimum slices, then the
preference: most slices, thinnest, or first).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk

from medzsad.cohort.inputs import VOLUME_SUFFIXES, StudyInput
from medzsad.config import PipelineConfig, SeriesRules
from medzsad.errors import DicomError, InputError, NiftiError
from medzsad.io.volume import LPS_TO_RAS, SourceInfo, Volume

__all__ = ["read_study", "read_nifti", "read_dicom_series", "dicom_series_in"]

log = logging.getLogger(__name__)


def read_nifti(path: Path) -> Volume:
    """Read a NIfTI file (first 3 dimensions) as a float32 volume in its own affine.

    Raises:
        NiftiError: Unreadable file or fewer than 3 dimensions.
    """
    try:
        img = cast(nib.Nifti1Image, nib.load(str(path)))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as e:  # nibabel/zlib/OSError for truncated or non-NIfTI files
        raise NiftiError(
            f"{path}: cannot read as NIfTI ({type(e).__name__}: {e}); is the file complete?"
        ) from e
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise NiftiError(f"{path}: expected a 3D volume, found shape {data.shape}")
    affine = np.asarray(img.affine, dtype=np.float64)
    src = SourceInfo(paths=(str(path),), kind="nifti", study_uid=path.name, series_uid=path.name)
    return Volume(data, affine, "", src, _slice_positions(affine, data.shape[2]))


def _slice_positions(affine_ras: np.ndarray, k: int) -> np.ndarray:
    a = LPS_TO_RAS @ affine_ras
    return np.array([a[:3, 3] + a[:3, 2] * i for i in range(k)])


def _itk_volume(img: sitk.Image, src: SourceInfo, modality: str) -> Volume:
    data = sitk.GetArrayFromImage(img).astype(np.float32).transpose(2, 1, 0)
    direction = np.array(img.GetDirection()).reshape(3, 3)
    a_lps = np.eye(4)
    a_lps[:3, :3] = direction @ np.diag(img.GetSpacing())
    a_lps[:3, 3] = img.GetOrigin()
    affine = LPS_TO_RAS @ a_lps
    return Volume(np.ascontiguousarray(data), affine, modality, src, _slice_positions(affine, data.shape[2]))


def dicom_series_in(folder: Path) -> list[dict[str, Any]]:
    """Every DICOM series under ``folder``: uid, files (GDCM order), modality, description, study uid."""
    found = []
    dirs = [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]
    for d in dirs:
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(d)) or ():
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(d), uid)
            try:
                hdr = pydicom.dcmread(files[0], stop_before_pixels=True)
            except Exception as e:  # pydicom raises InvalidDicomError, OSError, ...
                log.debug("unreadable DICOM header in a series: %s", e)
                continue
            found.append(
                {
                    "series_uid": uid,
                    "files": tuple(files),
                    "modality": str(getattr(hdr, "Modality", "")),
                    "series_description": str(getattr(hdr, "SeriesDescription", "")),
                    "study_uid": str(getattr(hdr, "StudyInstanceUID", "")),
                    "frame_of_reference_uid": str(getattr(hdr, "FrameOfReferenceUID", "")),
                    "sop_class_uid": str(getattr(hdr, "SOPClassUID", "")),
                    "slice_thickness": float(getattr(hdr, "SliceThickness", 0) or 0),
                }
            )
    return found


def _choose(series: list[dict[str, Any]], rules: SeriesRules | None, where: str) -> dict[str, Any]:
    r = rules or SeriesRules()
    ok = []
    for s in series:
        if r.modality and s["modality"] not in r.modality:
            continue
        if r.include and not any(re.search(p, s["series_description"], re.I) for p in r.include):
            continue
        if r.exclude and any(re.search(p, s["series_description"], re.I) for p in r.exclude):
            continue
        if len(s["files"]) < (r.min_slices or 1):
            continue
        ok.append(s)
    if not ok:
        raise DicomError(
            f"{where}: none of {len(series)} DICOM series matches the series rules of the pipeline"
        )
    prefer = r.prefer or "most_slices"
    if prefer == "most_slices":
        return max(ok, key=lambda s: len(s["files"]))
    if prefer == "thinnest":
        return min(ok, key=lambda s: (s["slice_thickness"] or 1e9, -len(s["files"])))
    return ok[0]


def read_dicom_series(
    folder: Path, rules: SeriesRules | None, study_uid: str = ""
) -> tuple[Volume, dict[str, Any]]:
    """Choose and read one DICOM series of a folder.

    Raises:
        DicomError: No DICOM series, no series matching the rules, or an unreadable series.
    """
    series = [s for s in dicom_series_in(folder) if not study_uid or s["study_uid"] == study_uid]
    if not series:
        raise DicomError(f"{folder}: no readable DICOM series found; is this a DICOM folder?")
    chosen = _choose(series, rules, str(folder))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(chosen["files"]))
    try:
        img = reader.Execute()
    except RuntimeError as e:
        raise DicomError(
            f"{folder}: series {chosen['series_uid']} cannot be read ({str(e).splitlines()[0]})"
        ) from e
    sops = []
    for f in chosen["files"]:
        sops.append(
            str(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
        )
    src = SourceInfo(
        paths=tuple(chosen["files"]),
        kind="dicom",
        study_uid=chosen["study_uid"],
        series_uid=chosen["series_uid"],
        sop_instance_uids=tuple(sops),
        frame_of_reference_uid=chosen["frame_of_reference_uid"],
        sop_class_uid=chosen["sop_class_uid"],
        series_description=chosen["series_description"],
    )
    info = {
        "series_uid": chosen["series_uid"],
        "description": chosen["series_description"],
        "modality": chosen["modality"],
        "instances": len(chosen["files"]),
        "candidates": len(series),
    }
    return _itk_volume(img, src, chosen["modality"]), info


def read_study(study: StudyInput, pipeline: PipelineConfig) -> tuple[Volume, dict[str, Any]]:
    """Read a study: a volume file, or one series of a DICOM folder.

    Raises:
        InputError: Missing, unreadable or unusable input.
    """
    p = Path(study.path)
    if not p.exists():
        raise InputError(f"{p}: study input does not exist")
    if p.is_dir():
        return read_dicom_series(p, pipeline.series, study.study_uid)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        v = read_nifti(p)
    elif name.endswith(VOLUME_SUFFIXES):
        try:
            img = sitk.ReadImage(str(p))
        except RuntimeError as e:
            raise InputError(f"{p}: cannot read ({str(e).splitlines()[0]})") from e
        v = _itk_volume(img, SourceInfo(paths=(str(p),), kind="itk", study_uid=p.name, series_uid=p.name), "")
    else:
        raise InputError(f"{p}: not a volume file ({', '.join(VOLUME_SUFFIXES)}) or a DICOM folder")
    return v, {"series_uid": v.source.series_uid, "description": "", "modality": v.modality, "instances": 1}
