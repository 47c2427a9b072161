"""Multi-frame DICOM objects: per-frame geometry from the functional groups (enhanced CT/MR/PET).

Enhanced objects (PS3.3 C.7.6.16) keep each frame's ImagePositionPatient in the Plane Position
functional group and orientation, pixel spacing and rescale in the Plane Orientation, Pixel
Measures and Pixel Value Transformation groups, either per frame or shared. Classic multi-frame
objects (RT Dose, NM) place frames along the normal with GridFrameOffsetVector or
SpacingBetweenSlices from one ImagePositionPatient.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydicom.dataset import Dataset

from medzsad.errors import DicomError
from medzsad.io.dicom_common import decode_frames, float_list, tag_float, tag_int, tag_str
from medzsad.io.dicom_stack import SliceRecord
from medzsad.io.geometry import iop_vectors

__all__ = ["frame_records", "is_multiframe"]


def is_multiframe(ds: Dataset, path: str = "") -> bool:
    """True for an object with more than one frame or with per-frame functional groups.

    Raises:
        DicomError: NumberOfFrames is not a single whole number.
    """
    return tag_int(ds, "NumberOfFrames", path, 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds


def _group_item(ds: Dataset, frame_item: Dataset | None, seq_keyword: str) -> Dataset | None:
    """The item of functional group ``seq_keyword`` for one frame (per-frame wins over shared)."""
    for owner in (frame_item, _first(ds, "SharedFunctionalGroupsSequence")):
        if owner is not None and seq_keyword in owner and len(owner[seq_keyword].value):
            return owner[seq_keyword].value[0]
    return None


def _first(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _frame_getter(frames: Callable[[], np.ndarray], f: int) -> Callable[[], np.ndarray]:
    return lambda: frames()[f]


def _cached_frames(ds: Dataset, path: str) -> Callable[[], np.ndarray]:
    cache: list[np.ndarray] = []

    def get() -> np.ndarray:
        if not cache:
            cache.append(decode_frames(ds, path))
        return cache[0]

    return get


def _enhanced_records(ds: Dataset, path: str, frames: Callable[[], np.ndarray]) -> list[SliceRecord]:
    per_frame = ds.PerFrameFunctionalGroupsSequence
    n_frames = tag_int(ds, "NumberOfFrames", path, len(per_frame)) or len(per_frame)
    if len(per_frame) != n_frames:
        raise DicomError(
            f"{path}: {tag_str('PerFrameFunctionalGroupsSequence')} has {len(per_frame)} items but "
            f"{tag_str('NumberOfFrames')} is {n_frames}"
        )
    shape = (tag_int(ds, "Rows", path, 0), tag_int(ds, "Columns", path, 0))
    records = []
    for f, item in enumerate(per_frame):
        where = f"{path} frame {f + 1}"
        pos = _group_item(ds, item, "PlanePositionSequence")
        ori = _group_item(ds, item, "PlaneOrientationSequence")
        meas = _group_item(ds, item, "PixelMeasuresSequence")
        if pos is None or "ImagePositionPatient" not in pos:
            raise DicomError(
                f"{where}: missing {tag_str('ImagePositionPatient')} in the Plane Position group"
            )
        if ori is None or "ImageOrientationPatient" not in ori:
            raise DicomError(
                f"{where}: missing {tag_str('ImageOrientationPatient')} in the Plane Orientation group"
            )
        if meas is None or "PixelSpacing" not in meas:
            raise DicomError(f"{where}: missing {tag_str('PixelSpacing')} in the Pixel Measures group")
        ps = float_list(meas.PixelSpacing, 2, "PixelSpacing", where)
        pvt = _group_item(ds, item, "PixelValueTransformationSequence")
        src = pvt if pvt is not None else ds
        slope = tag_float(src, "RescaleSlope", where, 1.0) or 1.0
        intercept = tag_float(src, "RescaleIntercept", where, 0.0)
        thick = (
            tag_float(meas, "SpacingBetweenSlices", where, 0.0)
            or tag_float(ds, "SpacingBetweenSlices", path, 0.0)
            or tag_float(meas, "SliceThickness", where, 0.0)
        )
        records.append(
            SliceRecord(
                path=path,
                position_lps=np.array(float_list(pos.ImagePositionPatient, 3, "ImagePositionPatient", where)),
                iop=tuple(float_list(ori.ImageOrientationPatient, 6, "ImageOrientationPatient", where)),
                pixel_spacing=(ps[0], ps[1]),
                shape=shape,
                pixels=_frame_getter(frames, f),
                slope=slope,
                intercept=intercept,
                sop_uid=str(ds.get("SOPInstanceUID", "")),
                frame=f + 1,
                fallback_spacing_mm=thick if thick > 0 else 1.0,
            )
        )
    return records


def _classic_records(ds: Dataset, path: str, frames: Callable[[], np.ndarray]) -> list[SliceRecord] | None:
    """Frames placed from one IPP/IOP (top level or NM DetectorInformationSequence), else ``None``."""
    src = ds if "ImagePositionPatient" in ds else _first(ds, "DetectorInformationSequence")
    if src is None or "ImagePositionPatient" not in src or "ImageOrientationPatient" not in src:
        return None
    n_frames = tag_int(ds, "NumberOfFrames", path, 1) or 1
    ipp = np.array(float_list(src.ImagePositionPatient, 3, "ImagePositionPatient", path))
    iop = tuple(float_list(src.ImageOrientationPatient, 6, "ImageOrientationPatient", path))
    try:
        normal = iop_vectors(iop)[2]
    except ValueError as e:
        raise DicomError(f"{path}: invalid {tag_str('ImageOrientationPatient')}: {e}") from e
    if "GridFrameOffsetVector" in ds:
        offsets = float_list(ds.GridFrameOffsetVector, n_frames, "GridFrameOffsetVector", path)
    else:
        step = tag_float(ds, "SpacingBetweenSlices", path, 0.0) or tag_float(ds, "SliceThickness", path, 0.0)
        if not step:
            return None
        offsets = [f * step for f in range(n_frames)]
    ps = float_list(ds.get("PixelSpacing", [1.0, 1.0]), 2, "PixelSpacing", path)
    slope = tag_float(ds, "RescaleSlope", path, 0.0) or tag_float(ds, "DoseGridScaling", path, 1.0) or 1.0
    intercept = tag_float(ds, "RescaleIntercept", path, 0.0)
    shape = (tag_int(ds, "Rows", path, 0), tag_int(ds, "Columns", path, 0))
    return [
        SliceRecord(
            path=path,
            position_lps=ipp + offsets[f] * normal,
            iop=iop,
            pixel_spacing=(ps[0], ps[1]),
            shape=shape,
            pixels=_frame_getter(frames, f),
            slope=slope,
            intercept=intercept,
            sop_uid=str(ds.get("SOPInstanceUID", "")),
            frame=f + 1,
        )
        for f in range(n_frames)
    ]


def frame_records(ds: Dataset, path: str) -> list[SliceRecord] | None:
    """One :class:`SliceRecord` per frame, or ``None`` when the object has no patient geometry.

    Raises:
        DicomError: Per-frame groups that are incomplete or inconsistent (names frame and tag).
    """
    frames = _cached_frames(ds, path)
    if "PerFrameFunctionalGroupsSequence" in ds:
        return _enhanced_records(ds, path, frames)
    return _classic_records(ds, path, frames)
