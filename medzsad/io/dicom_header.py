"""Header-only reading of DICOM files for discovery, and grouping of headers into series."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from medzsad.errors import DicomError
from medzsad.io.dicom_common import read_dataset, tag_str
from medzsad.io.dicom_objects import CANDIDATE_ROLES, ObjectRole, classify_object
from medzsad.io.geometry import Plane, iop_vectors, is_oblique, plane_of_normal
from medzsad.io.series_ref import SeriesRef

__all__ = ["HeaderSummary", "header_summary", "series_from_headers"]


@dataclass(frozen=True)
class HeaderSummary:
    """What discovery keeps of one DICOM file (small and picklable)."""

    path: str
    study_uid: str
    series_uid: str
    modality: str
    description: str
    study_description: str
    series_number: int | None
    image_type: tuple[str, ...]
    n_frames: int
    iop: tuple[float, ...] | None
    slice_thickness_mm: float | None
    pixel_spacing_mm: tuple[float, float] | None
    rows: int
    cols: int
    sop_class_uid: str
    is_image: bool
    body_part: str
    transfer_syntax: str
    role: ObjectRole = ObjectRole.IMAGE
    not_candidate: str = ""
    sop_uid: str = ""


def _floats(value: object) -> tuple[float, ...] | None:
    try:
        out = tuple(float(x) for x in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return out if out and all(np.isfinite(out)) else None


def _first_float(value: object) -> float | None:
    vals = _floats([value])
    return vals[0] if vals else None


def _shared(ds: Dataset, seq: str, keyword: str) -> object:
    """``keyword`` of functional group ``seq`` of an enhanced object (shared, else the first frame's)."""
    for owner in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = ds.get(owner)
        if items and seq in items[0] and len(items[0][seq].value):
            value = items[0][seq].value[0].get(keyword)
            if value is not None:
                return value
    return None


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def header_summary(path: str) -> HeaderSummary:
    """Read one file's header (no pixel data).

    Raises:
        DicomError: Not DICOM, unreadable, or no StudyInstanceUID/SeriesInstanceUID.
    """
    ds = read_dataset(path, header_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid IS/DS values are reported as None, not warned
        return _summary_of(ds, path)


def _summary_of(ds: Dataset, path: str) -> HeaderSummary:
    for kw in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not ds.get(kw):
            raise DicomError(f"{path}: missing {tag_str(kw)}; cannot group the file into a series")
    iop = _floats(
        ds.get("ImageOrientationPatient")
        or _shared(ds, "PlaneOrientationSequence", "ImageOrientationPatient")
    )
    ps = _floats(ds.get("PixelSpacing") or _shared(ds, "PixelMeasuresSequence", "PixelSpacing"))
    thick = ds.get("SliceThickness") or _shared(ds, "PixelMeasuresSequence", "SliceThickness")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "")
    image_type = ds.get("ImageType") or []
    image_type = [image_type] if isinstance(image_type, str) else list(image_type)
    sop_class = str(ds.get("SOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "")
    has_pixels = "Rows" in ds and "Columns" in ds
    kind = classify_object(sop_class, modality, str(ds.get("Manufacturer", "") or ""), has_pixels)
    return HeaderSummary(
        path=path,
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        modality=modality,
        description=str(ds.get("SeriesDescription", "") or ""),
        study_description=str(ds.get("StudyDescription", "") or ""),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        image_type=tuple(str(x).upper() for x in image_type),
        n_frames=_int_or_none(ds.get("NumberOfFrames")) or 1,
        iop=iop if iop and len(iop) == 6 else None,
        slice_thickness_mm=_first_float(thick),
        pixel_spacing_mm=(ps[0], ps[1]) if ps and len(ps) == 2 else None,
        rows=_int_or_none(ds.get("Rows")) or 0,
        cols=_int_or_none(ds.get("Columns")) or 0,
        sop_class_uid=sop_class,
        is_image=has_pixels,
        body_part=str(ds.get("BodyPartExamined", "") or ""),
        transfer_syntax=str(ts),
        role=kind.role,
        not_candidate=kind.reason,
        sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
    )



def _plane(headers: list[HeaderSummary]) -> tuple[str, bool]:
    planes, oblique = set(), False
    for h in headers:
        if h.iop is None:
            planes.add(Plane.UNKNOWN.value)
            continue
        try:
            row, col, normal = iop_vectors(h.iop)
        except ValueError:
            planes.add(Plane.UNKNOWN.value)
            continue
        planes.add(plane_of_normal(normal).value)
        oblique = oblique or is_oblique(row, col)
    if len(planes) > 1:
        return "mixed", oblique
    return planes.pop(), oblique


def series_from_headers(headers: list[HeaderSummary]) -> tuple[SeriesRef, ...]:
    """Group one study's headers by SeriesInstanceUID, in SeriesNumber order."""
    by_series: dict[str, list[HeaderSummary]] = {}
    for h in headers:
        by_series.setdefault(h.series_uid, []).append(h)
    out = []
    for uid, every in by_series.items():
        # a stray derived object filed under an image series' UID does not spoil the series
        hs = [h for h in every if h.role in CANDIDATE_ROLES] or every
        first = hs[0]
        plane, oblique = _plane(hs)
        size = Counter((h.rows, h.cols) for h in hs).most_common(1)[0][0]
        # a copy of an instance (same SOPInstanceUID) is one slice: the reader keeps one of them
        unique = list({h.sop_uid or h.path: h for h in hs}.values())
        out.append(
            SeriesRef(
                series_uid=uid,
                study_uid=first.study_uid,
                kind="dicom",
                files=tuple(sorted(h.path for h in hs)),
                modality=first.modality,
                description=first.description,
                series_number=first.series_number,
                image_type=first.image_type,
                n_instances=len(unique),
                n_slices=sum(h.n_frames for h in unique),
                plane=plane,
                oblique=oblique,
                slice_thickness_mm=first.slice_thickness_mm,
                pixel_spacing_mm=first.pixel_spacing_mm,
                rows=size[0],
                cols=size[1],
                sop_class_uid=first.sop_class_uid,
                is_image=any(h.is_image for h in hs),
                body_part=first.body_part,
                transfer_syntaxes=tuple(sorted({h.transfer_syntax for h in hs})),
                not_candidate=first.not_candidate,  # empty for a candidate role
                secondary=first.role is ObjectRole.SECONDARY,
            )
        )
    out.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30, s.series_uid))
    return tuple(out)
