"""Load a DICOM series (single-frame files, multi-frame objects or a 2D image) into a :class:`Volume`.

RescaleSlope/RescaleIntercept are applied (HU for CT). Cross-sectional modalities (CT, MR, PT)
need ImagePositionPatient and ImageOrientationPatient; projection images (CR, DX, MG, US, ...)
without them load as one slice at the origin with identity direction, as SimpleITK does, and
MONOCHROME1 images are inverted so that high values are bright.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from pydicom.dataset import Dataset

from medzsad.errors import DicomError, SourceChangedError
from medzsad.io.dicom_common import (
    GeometryPolicy,
    LoadPolicy,
    check_has_pixels,
    check_pixel_claim,
    decode_frames,
    float_list,
    read_dataset,
    tag_float,
    tag_int,
    tag_str,
)
from medzsad.io.dicom_multiframe import frame_records, is_multiframe
from medzsad.io.dicom_objects import is_lossy
from medzsad.io.dicom_stack import SliceRecord, stack_slices
from medzsad.io.geometry import affine_lps_from_vectors, affine_ras_from_lps, grid_problem
from medzsad.io.limits import check_bytes, check_count, current_limits
from medzsad.io.sources import disk_path
from medzsad.io.volume import SourceInfo, Volume

__all__ = ["load_dicom_series", "CROSS_SECTIONAL_MODALITIES"]

log = logging.getLogger(__name__)

CROSS_SECTIONAL_MODALITIES = frozenset({"CT", "MR", "PT"})


def _pixel_spacing(ds: Dataset, path: str, warnings: list[str], strict: bool = True) -> tuple[float, float]:
    """PixelSpacing, else ImagerPixelSpacing, else 1 mm with a warning.

    A zero or negative spacing is an error for a slice with a patient position (``strict``) and a
    warning (then 1 mm) for a projection image.
    """
    for kw in ("PixelSpacing", "ImagerPixelSpacing"):
        if kw in ds and ds.get(kw):
            ps = float_list(ds.get(kw), 2, kw, path)
            if min(ps) > 0:
                return ps[0], ps[1]
            if strict:
                raise DicomError(f"{path}: {tag_str(kw)} must be positive (found {ps})")
    warnings.append(f"no positive {tag_str('PixelSpacing')}; assumed 1 mm")
    return 1.0, 1.0


def _pixels_of(ds: Dataset, path: str) -> Callable[[], np.ndarray]:
    return lambda: decode_frames(ds, path)[0]


def _single_record(ds: Dataset, path: str, warnings: list[str]) -> SliceRecord:
    ipp = float_list(ds.ImagePositionPatient, 3, "ImagePositionPatient", path)
    if "ImageOrientationPatient" not in ds or not ds.ImageOrientationPatient:
        raise DicomError(
            f"{path}: missing {tag_str('ImageOrientationPatient')}; a slice with a position needs an "
            "orientation to be placed in the patient"
        )
    thick = tag_float(ds, "SpacingBetweenSlices", path, 0.0) or tag_float(ds, "SliceThickness", path, 0.0)
    try:
        instance = tag_int(ds, "InstanceNumber", path, 0)
    except DicomError:
        instance = 0  # only breaks ties; a malformed value is not worth failing the series
    return SliceRecord(
        path=path,
        position_lps=np.array(ipp),
        iop=tuple(float_list(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", path)),
        pixel_spacing=_pixel_spacing(ds, path, warnings),
        shape=(require_int(ds, "Rows", path), require_int(ds, "Columns", path)),
        pixels=_pixels_of(ds, path),
        slope=tag_float(ds, "RescaleSlope", path, 1.0) or 1.0,
        intercept=tag_float(ds, "RescaleIntercept", path, 0.0),
        sop_uid=str(ds.get("SOPInstanceUID", "")),
        instance_number=instance,
        fallback_spacing_mm=thick if thick > 0 else 1.0,
    )


def require_int(ds: Dataset, keyword: str, path: str) -> int:
    """A positive integer attribute or a :class:`DicomError` naming the tag."""
    value = tag_int(ds, keyword, path, 0)
    if value <= 0:
        raise DicomError(f"{path}: {tag_str(keyword)} must be a positive integer (found {ds.get(keyword)!r})")
    return value


def _no_geometry_volume(ds: Dataset, path: str, warnings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(data (I, J, K) float32, affine_ras)`` for an image without patient position."""
    frames = decode_frames(ds, path).astype(np.float64)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        # inverted across the stored range (BitsStored, PixelRepresentation), before the rescale,
        # as SimpleITK/GDCM do: the same stored value gives the same value in every image
        bits = tag_int(ds, "BitsStored", path, 16)
        lo, hi = (
            (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            if tag_int(ds, "PixelRepresentation", path, 0)
            else (0, 2**bits - 1)
        )
        frames = lo + hi - frames
        warnings.append("MONOCHROME1 image inverted so that high values are bright")
    slope = tag_float(ds, "RescaleSlope", path, 1.0) or 1.0
    frames = frames * slope + tag_float(ds, "RescaleIntercept", path, 0.0)
    sy, sx = _pixel_spacing(ds, path, warnings, strict=False)
    step = tag_float(ds, "SpacingBetweenSlices", path, 1.0) or 1.0
    if frames.shape[0] > 1:
        # frames without positions are 1 mm apart, as SimpleITK/GDCM (and so 3D Slicer) place them,
        # so that the heat map overlays the scan those viewers show
        step = 1.0
        warnings.append(
            f"{frames.shape[0]} frames without patient geometry (no {tag_str('ImagePositionPatient')}); "
            "placed 1 mm apart with identity direction, as SimpleITK reads them"
        )
    eye = np.eye(3)
    affine_lps = affine_lps_from_vectors(np.zeros(3), (eye[0], eye[1], eye[2]), (sx, sy, step))
    problem = grid_problem(affine_lps)
    if problem is not None:
        tag = tag_str("SpacingBetweenSlices") if problem[1] == "k" else tag_str("PixelSpacing")
        raise DicomError(f"{path}: {problem[0]}, from {tag}; the value is corrupt")
    return frames.astype(np.float32).transpose(2, 1, 0), affine_ras_from_lps(affine_lps)


def _source(
    ds: Dataset, paths: tuple[str, ...], uids: tuple[str, ...], frames: tuple[int, ...]
) -> SourceInfo:
    return SourceInfo(
        paths=paths,
        kind="dicom",
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        sop_instance_uids=uids,
        frame_numbers=frames if any(frames) else (),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        series_description=str(ds.get("SeriesDescription", "")),
        manufacturer=str(ds.get("Manufacturer", "") or "").strip(),
        model_name=str(ds.get("ManufacturerModelName", "") or "").strip(),
    )


_ACQUISITION_KEYWORDS = (
    "EchoTime",
    "EchoNumbers",
    "TriggerTime",
    "TemporalPositionIdentifier",
    "AcquisitionNumber",
)


def _copy_marks(ds: Dataset) -> tuple[bool, bool, tuple[str, ...]]:
    """``(derived, lossy, acquisition)`` of an instance: which copy of a duplicated slice is kept."""
    image_type = ds.get("ImageType") or []
    first = image_type if isinstance(image_type, str) else (image_type[0] if len(image_type) else "")
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    lossy = is_lossy(ts, str(ds.get("LossyImageCompression", "") or ""))
    acquisition = tuple(str(ds.get(k, "")).strip() for k in _ACQUISITION_KEYWORDS)
    return str(first).strip().upper() == "DERIVED", lossy, acquisition


def _records_of(
    datasets: list[tuple[str, Dataset]], policy: GeometryPolicy, warnings: list[str]
) -> list[SliceRecord] | None:
    """Slice records of every file (frames of multi-frame files), or None for one object without geometry."""
    records: list[SliceRecord] = []
    for path, ds in datasets:
        start = len(records)
        found = _file_records(path, ds, len(datasets) == 1, policy.other, warnings)
        if found is None:
            return None
        records += found
        derived, lossy, acquisition = _copy_marks(ds)
        for r in records[start:]:
            r.derived, r.lossy, r.acquisition = derived, lossy, acquisition
    return records


def _one_copy_per_instance(
    datasets: list[tuple[str, Dataset]], warnings: list[str]
) -> list[tuple[str, Dataset]]:
    """One file per SOPInstanceUID: of copies of an instance, the original losslessly stored one.

    A PACS export can hold an instance twice (two transfer syntaxes, two exports merged); which
    copy is read never depends on the file names.
    """
    by_uid: dict[str, list[tuple[str, Dataset]]] = {}
    for n, (path, ds) in enumerate(datasets):
        by_uid.setdefault(str(ds.get("SOPInstanceUID", "") or f"#{n}"), []).append((path, ds))
    if len(by_uid) == len(datasets):
        return datasets
    kept = [min(group, key=lambda item: (*_copy_marks(item[1])[:2], item[0])) for group in by_uid.values()]
    copies = len(datasets) - len(kept)
    noun = "copy" if copies == 1 else "copies"
    message = (
        f"{copies} duplicate {noun} of instances (same {tag_str('SOPInstanceUID')}); kept one copy of "
        "each, the original losslessly stored one"
    )
    log.warning("%s", message)
    warnings.append(message)
    return kept


def _file_records(
    path: str, ds: Dataset, alone: bool, policy: LoadPolicy, warnings: list[str]
) -> list[SliceRecord] | None:
    """The slice records of one file, or None for a lone object without patient geometry."""
    modality = str(ds.get("Modality", ""))
    if is_multiframe(ds, path):
        recs = frame_records(ds, path)
        lenient = modality not in CROSS_SECTIONAL_MODALITIES or policy is not LoadPolicy.ERROR
        if recs is None and alone and lenient:
            return None
        if recs is None:
            raise DicomError(
                f"{path}: multi-frame object without per-frame {tag_str('ImagePositionPatient')}; "
                "cannot place its frames in the patient"
            )
        return recs
    if "ImagePositionPatient" in ds and ds.ImagePositionPatient:
        return [_single_record(ds, path, warnings)]
    if alone and modality not in CROSS_SECTIONAL_MODALITIES:
        return None
    raise DicomError(
        f"{path}: missing {tag_str('ImagePositionPatient')} (Modality {modality or 'unknown'}); "
        "slices cannot be ordered or placed without it"
    )


def _check_present(paths: list[str]) -> None:
    """Raise when files of the series disappeared since discovery (never load what remains)."""
    gone = [p for p in paths if not os.path.exists(disk_path(p))]
    if gone:
        raise SourceChangedError(
            f"{gone[0]}: {len(gone)} of the {len(paths)} files of the series no longer exist (deleted or "
            "moved since discovery); rerun discovery on the folder"
        )


def _check_series_claims(datasets: list[tuple[str, Dataset]]) -> None:
    """Pixel data present and the whole series' claimed voxels within the read limits."""
    limits = current_limits()
    frames_total = bytes_total = 0
    for path, ds in datasets:
        check_has_pixels(ds, path)
        frames, rows, cols, _ = check_pixel_claim(ds, path)
        frames_total += frames
        bytes_total += frames * rows * cols * 4
    where = datasets[0][0] if len(datasets) == 1 else f"{datasets[0][0]} (+{len(datasets) - 1} files)"
    check_count(frames_total, limits.max_frames, where, "slices of the series", DicomError)
    check_bytes(bytes_total, limits.max_voxel_bytes, where, "Rows x Columns x slices of the series")


def _check_values(data: np.ndarray, ds: Dataset, path: str) -> None:
    """Rescaled values must be finite (a huge RescaleSlope or float pixel data can overflow)."""
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        slope, intercept = ds.get("RescaleSlope", 1), ds.get("RescaleIntercept", 0)
        raise DicomError(
            f"{path}: {bad} of {data.size} rescaled values are NaN/infinite ({tag_str('RescaleSlope')} "
            f"{slope!r}, {tag_str('RescaleIntercept')} {intercept!r}); the pixel data or rescale values "
            "are corrupt"
        )


def load_dicom_series(
    paths: Sequence[str], policy: LoadPolicy | str | GeometryPolicy = LoadPolicy.WARN
) -> Volume:
    """Read every file of one series and build the :class:`Volume`.

    Args:
        paths: The series' files (any order; archive members allowed).
        policy: ``error``, ``warn`` or ``resample`` for geometry problems (see :class:`LoadPolicy`),
            or a :class:`GeometryPolicy` with a policy of its own for gaps.

    Returns:
        The volume: ``data`` ``(I, J, K)`` float32 rescaled values, slices sorted along the normal.

    Raises:
        DicomError: Unreadable file, no pixel data, missing position/orientation, or a geometry
            problem under the ``error`` policy. The message names the file and tag.
    """
    policy = GeometryPolicy.of(policy)
    if not paths:
        raise DicomError("no DICOM files given for the series")
    _check_present([str(p) for p in paths])
    warnings: list[str] = []
    datasets = _one_copy_per_instance(
        [(str(p), read_dataset(str(p), header_only=False)) for p in paths], warnings
    )
    first = datasets[0][1]
    _check_series_claims(datasets)
    records = _records_of(datasets, policy, warnings)
    if records is None:
        path, ds = datasets[0]
        data, affine = _no_geometry_volume(ds, path, warnings)
        uids = (str(ds.get("SOPInstanceUID", "")),) * data.shape[2]
        src = replace(_source(ds, (path,) * data.shape[2], uids, ()), patient_geometry=False)
        _check_values(data, ds, path)
        k = data.shape[2]
        pos = np.array([affine_lps_k(affine, n) for n in range(k)])
        return Volume(data, affine, str(ds.get("Modality", "")), src, pos, tuple(warnings))
    # messages name files, not UIDs (a SeriesInstanceUID is an identifier; see docs/privacy.md)
    where = f"{datasets[0][0]} (series of {len(datasets)} files)" if len(datasets) > 1 else datasets[0][0]
    res = stack_slices(records, policy, where)
    kept = [r for r in res.records]
    src = _source(
        first,
        tuple(r.path if r else "" for r in kept),
        tuple(r.sop_uid if r else "" for r in kept),
        tuple(r.frame if r else 0 for r in kept),
    )
    _check_values(res.data, first, datasets[0][0])
    all_warnings = tuple(warnings + res.warnings)
    log.debug("loaded %s: shape %s, %d warning(s)", where, res.data.shape, len(all_warnings))
    return Volume(
        res.data, res.affine_ras, str(first.get("Modality", "")), src, res.positions_lps, all_warnings
    )


def affine_lps_k(affine_ras: np.ndarray, k: int) -> np.ndarray:
    """LPS position of voxel ``(0, 0, k)``."""
    p = affine_ras @ np.array([0.0, 0.0, float(k), 1.0])
    return np.array([-p[0], -p[1], p[2]])
