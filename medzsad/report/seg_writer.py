"""DICOM SEG of the anomaly mask and a DICOM Parametric Map of the heat map, for PACS review.

Both objects are written with highdicom and reference the exact source series: every frame of the
derived object matches one source frame (single-frame instance, or frame of a multi-frame object)
pixel for pixel (see :mod:`medzsad.report.seg_writer_geometry`), and the Frame of Reference, patient
and study are copied from the source.

* SEG (Segmentation IOD, PS3.3 A.51): ``BINARY``, one segment "anomaly" with category
  *Morphologically Abnormal Structure* (SCT 49755003, CID 7150) and type *Lesion* (SCT 52988006,
  CID 7151), algorithm type ``AUTOMATIC``, algorithm family *Artificial Intelligence* (DCM 123110,
  CID 7162), name ``medzsad AnomalyCLIP`` and the package version. Frames without anomaly are left
  out unless ``keep_empty_frames``; an all-empty mask keeps every frame so the object stays valid.
* Parametric Map (PS3.3 A.75): the heat map in [0, 1] stored as unsigned 16-bit ``round(heat *
  1000)`` with a Real World Value Mapping (slope 0.001, no units), so viewers that do not handle
  float pixel data still show it, with window 0..1000.

UIDs are derived from the source series, the kind of object, the version and the threshold, so a
re-run replaces the earlier object in a PACS instead of adding a copy.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset, FileDataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

import medzsad
from medzsad.errors import OutputError
from medzsad.fileio import atomic_path
from medzsad.io.dicom_objects import MEDZSAD_MANUFACTURER
from medzsad.io.volume import Volume
from medzsad.report.seg_writer_geometry import SourceImages, gather_frames, load_source_images

__all__ = [
    "SegWriteResult",
    "write_dicom_seg",
    "write_heatmap_parametric_map",
    "with_type2_filled",
    "TYPE2_SOURCE_KEYWORDS",
    "ALGORITHM_NAME",
    "HEAT_SCALE",
    "SEG_SERIES_NUMBER",
    "PMAP_SERIES_NUMBER",
]

logger = logging.getLogger(__name__)

ALGORITHM_NAME = "medzsad AnomalyCLIP"
#: Stored value per unit heat in the Parametric Map (heat 1.0 -> 1000).
HEAT_SCALE = 1000
SEG_SERIES_NUMBER = 9901
PMAP_SERIES_NUMBER = 9902
_MANUFACTURER = MEDZSAD_MANUFACTURER  # what input discovery recognises as our own output

#: Type 2 attributes (PS3.3 C.7.1.1 Patient, C.7.2.1 General Study, C.7.4.1 Frame of Reference)
#: that highdicom copies from the source into the derived object. Anonymisers often drop them;
#: Type 2 means "present, may be empty", so a missing one is sent empty.
TYPE2_SOURCE_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "PositionReferenceIndicator",
)


@dataclass(frozen=True)
class SegWriteResult:
    """What was written.

    Attributes:
        path: The DICOM file.
        series_uid: SeriesInstanceUID of the new object.
        sop_instance_uid: SOPInstanceUID of the new object.
        n_frames: Number of frames stored.
    """

    path: Path
    series_uid: str
    sop_instance_uid: str
    n_frames: int


def with_type2_filled(ds: Dataset) -> Dataset:
    """A copy of ``ds`` with every missing :data:`TYPE2_SOURCE_KEYWORDS` attribute added empty.

    The copy has its own element table (the source dataset is never changed); element values are
    shared, not duplicated, so pixel data is not copied.

    Args:
        ds: A source image dataset (single- or multi-frame).

    Returns:
        The filled copy (``ds`` itself when nothing was missing).
    """
    missing = [kw for kw in TYPE2_SOURCE_KEYWORDS if kw not in ds]
    if not missing:
        return ds
    out = Dataset()
    if isinstance(ds, FileDataset):
        out = FileDataset(ds.filename or "", {}, file_meta=ds.file_meta, preamble=ds.preamble)
    for elem in ds:
        out.add(elem)
    for kw in missing:
        setattr(out, kw, None)
    return out


def _sources_with_type2(volume: Volume) -> SourceImages:
    sources = load_source_images(volume)
    return replace(sources, datasets=[with_type2_filled(ds) for ds in sources.datasets])


def _uid(volume: Volume, *parts: object) -> str:
    return str(generate_uid(entropy_srcs=[volume.source.series_uid, *[str(p) for p in parts]]))


def _check_shape(array: np.ndarray, volume: Volume, what: str, out_path: Path) -> None:
    if tuple(array.shape) != volume.shape_ijk:
        raise OutputError(
            f"{out_path}: {what} shape {tuple(array.shape)} differs from the scan's (I, J, K) "
            f"{volume.shape_ijk}; pass the array in the scan's voxel grid"
        )


def _algorithm(version: str) -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, family=codes.cid7162.ArtificialIntelligence, version=version
    )


def _save(dataset: hd.SOPClass, out_path: Path, what: str) -> SegWriteResult:
    """Write ``dataset`` atomically; returns the file and its UIDs."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    n_frames = int(dataset.NumberOfFrames)
    logger.info("wrote %s %s (%d frames)", what, out_path.name, n_frames)
    return SegWriteResult(out_path, str(dataset.SeriesInstanceUID), str(dataset.SOPInstanceUID), n_frames)


#: Prefix of SeriesDescription/ContentDescription of smoke runs (random weights; scores meaningless).
SMOKE_PREFIX = "SMOKE RUN random weights - "


def seg_series_description(threshold: float, smoke: bool = False) -> str:
    """SeriesDescription (0008,103E) of the SEG: names medzsad and the threshold (<= 64 chars)."""
    return f"{SMOKE_PREFIX if smoke else ''}medzsad anomaly mask (heat >= {threshold:.3g})"[:64]


def _content_label(label: str, smoke: bool) -> str:
    """ContentLabel (0070,0080), a CS of at most 16 characters: ``SMOKE_`` first on smoke runs."""
    return f"SMOKE_{label}" if smoke else label


def _anomaly_segment(version: str) -> hd.seg.SegmentDescription:
    """Segment 1 "anomaly": Morphologically Abnormal Structure / Lesion (CID 7150/7151), automatic."""
    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="anomaly",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=_algorithm(version),
        display_color=hd.color.CIELabColor(60.0, 70.0, 60.0),
    )


def _equipment(algorithm_version: str) -> dict[str, Any]:
    """The one instance's equipment attributes (General Equipment module, PS3.3 C.7.5.1)."""
    return {
        "instance_number": 1,
        "manufacturer": _MANUFACTURER,
        "manufacturer_model_name": ALGORITHM_NAME,
        "software_versions": algorithm_version,
        "device_serial_number": "0",
    }


def write_dicom_seg(
    mask_ijk: np.ndarray,
    volume: Volume,
    out_path: str | Path,
    *,
    threshold: float,
    keep_empty_frames: bool = False,
    algorithm_version: str = medzsad.__version__,
    smoke: bool = False,
) -> SegWriteResult:
    """Write the anomaly mask as a BINARY DICOM SEG referencing the source series.

    Args:
        mask_ijk: ``(I, J, K)`` mask in the scan's voxel grid; any non-zero voxel is anomalous
            (a lesion label map is fine).
        volume: The DICOM-sourced scan the mask was computed on (``volume.source.paths`` must
            still exist).
        out_path: Destination ``.dcm`` file (written atomically).
        threshold: Heat threshold that made the mask (shown in the SeriesDescription).
        keep_empty_frames: Store a frame for every source frame, not only those with anomaly.
        algorithm_version: Version written in the Algorithm Identification.
        smoke: Random weights were used: SeriesDescription and ContentLabel say so.

    Returns:
        The written file and its UIDs.

    Raises:
        DicomError: The source files are missing, changed, or lack geometry.
        GeometryError: The mask grid does not match the source frames.
        OutputError: Wrong mask shape, highdicom refuses the object, or the file cannot be written.
    """
    out = Path(out_path)
    _check_shape(mask_ijk, volume, "mask", out)
    sources = _sources_with_type2(volume)
    frames = gather_frames((np.asarray(mask_ijk) > 0).astype(np.uint8), volume.affine_lps, sources.frames)
    omit = not keep_empty_frames and bool(frames.any())
    digest = hashlib.sha256(np.packbits(frames).tobytes()).hexdigest()[:16]
    series_uid = _uid(volume, "seg-series", algorithm_version, threshold)
    sop_uid = _uid(volume, "seg-instance", algorithm_version, threshold, keep_empty_frames, digest)
    prefix = SMOKE_PREFIX if smoke else ""
    try:
        seg = hd.seg.Segmentation(
            source_images=sources.datasets,
            pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[_anomaly_segment(algorithm_version)],
            series_instance_uid=series_uid,
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=sop_uid,
            **_equipment(algorithm_version),
            omit_empty_frames=omit,
            series_description=seg_series_description(threshold, smoke),
            content_label=_content_label("ANOMALY", smoke),
            content_description=f"{prefix}medzsad anomaly mask, heat >= {threshold:.3g}"[:64],
        )
    except (ValueError, TypeError) as e:
        raise OutputError(f"{out}: highdicom refused the segmentation: {e}") from e
    return _save(seg, out, "DICOM SEG")


def _heat_frames(heat_ijk: np.ndarray, volume: Volume, sources: SourceImages, out: Path) -> np.ndarray:
    heat = np.asarray(heat_ijk)
    if not np.isfinite(heat).all():
        raise OutputError(f"{out}: heat map has NaN or infinite values; expected values in [0, 1]")
    # gathered first (strided views of the float map), then quantised as before
    frames = gather_frames(heat, volume.affine_lps, sources.frames).astype(np.float64)
    np.clip(frames, 0.0, 1.0, out=frames)
    frames *= HEAT_SCALE
    return np.rint(frames, out=frames).astype(np.uint16)


def _heat_mapping() -> hd.pm.RealWorldValueMapping:
    """Stored value -> heat: slope ``1 / HEAT_SCALE``, no units (UCUM ``1``)."""
    return hd.pm.RealWorldValueMapping(
        lut_label="HEAT",
        lut_explanation="medzsad anomaly heat (0 normal .. 1 anomalous)",
        unit=codes.UCUM.NoUnits,
        value_range=(0, HEAT_SCALE),
        slope=1.0 / HEAT_SCALE,
        intercept=0.0,
    )


def write_heatmap_parametric_map(
    heat_ijk: np.ndarray,
    volume: Volume,
    out_path: str | Path,
    *,
    threshold: float | None = None,
    algorithm_version: str = medzsad.__version__,
    smoke: bool = False,
) -> SegWriteResult:
    """Write the heat map as a DICOM Parametric Map referencing the source series.

    Args:
        heat_ijk: ``(I, J, K)`` float heat map in [0, 1] in the scan's voxel grid (values outside
            are clipped; stored with a resolution of ``1 / HEAT_SCALE``).
        volume: The DICOM-sourced scan.
        out_path: Destination ``.dcm`` file (written atomically).
        threshold: Mask threshold, recorded in the content description when given.
        algorithm_version: Version written in SoftwareVersions.
        smoke: Random weights were used: SeriesDescription and ContentLabel say so.

    Returns:
        The written file and its UIDs.

    Raises:
        DicomError: The source files are missing, changed, or lack geometry.
        GeometryError: The heat map grid does not match the source frames.
        OutputError: Wrong shape, non-finite values, highdicom refuses it, or it cannot be written.
    """
    out = Path(out_path)
    _check_shape(heat_ijk, volume, "heat map", out)
    sources = _sources_with_type2(volume)
    frames = _heat_frames(heat_ijk, volume, sources, out)
    digest = hashlib.sha256(frames.tobytes()).hexdigest()[:16]
    note = "" if threshold is None else f", mask at >= {threshold:.3g}"
    prefix = SMOKE_PREFIX if smoke else ""
    try:
        pmap = hd.pm.ParametricMap(
            source_images=sources.datasets,
            pixel_array=frames,
            series_instance_uid=_uid(volume, "pmap-series", algorithm_version),
            series_number=PMAP_SERIES_NUMBER,
            sop_instance_uid=_uid(volume, "pmap-instance", algorithm_version, digest),
            **_equipment(algorithm_version),
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[_heat_mapping()],
            voi_lut_transformations=[
                hd.VOILUTTransformation(window_center=HEAT_SCALE / 2, window_width=HEAT_SCALE)
            ],
            content_label=_content_label("HEATMAP", smoke),
            content_description=f"{prefix}medzsad anomaly heat map{note}"[:64],
            series_description=f"{prefix}medzsad anomaly heat map (0..1 as 0..1000)"[:64],
        )
    except (ValueError, TypeError) as e:
        raise OutputError(f"{out}: highdicom refused the parametric map: {e}") from e
    # General Series Laterality (0020,0060) is Type 2C; dciodvfy cannot evaluate its condition for
    # this IOD and reports it missing, so send it empty (unknown), as Type 2 allows.
    pmap.Laterality = None
    return _save(pmap, out, "DICOM Parametric Map")
