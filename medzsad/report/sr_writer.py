"""DICOM Structured Report of a study's result: TID 1500 Measurement Report (Comprehensive 3D SR).

Content (PS3.16 TID 1500, written with :mod:`highdicom.sr`):

* observer: the device ``medzsad`` (TID 1004 Device Observer Identifying Attributes);
* one *Measurements and Qualitative Evaluations* group (TID 1501) for the study: the study score
  (no units), its p-value and the flag when a site profile gave them, the algorithm (name, medzsad
  version, parameters: model, weights, operating point and where it came from);
* one *Volumetric ROI Measurements* group (TID 1411) per lesion: volume (SCT 118565006, mL) and
  maximum heat (derivation *Maximum*, SCT 56851009), each referencing segment 1 of the study's
  DICOM SEG (the anomaly segment holding every lesion) and the source series.

The private concepts (score, heat, p-value, flag) use the coding scheme ``99MEDZSAD``. UIDs derive
from the source series, the version and the content digest, so re-sending replaces the object.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

import medzsad
from medzsad.analysis.lesions import Lesion
from medzsad.errors import MedzsadError, OutputError
from medzsad.fileio import atomic_path
from medzsad.io.dicom_objects import MEDZSAD_MANUFACTURER
from medzsad.io.volume import Volume
from medzsad.report.seg_writer import SMOKE_PREFIX

__all__ = ["SrEvidence", "SrWriteResult", "write_dicom_sr", "SR_SERIES_NUMBER", "SR_FILE"]

SR_SERIES_NUMBER = 9903
SR_FILE = Path("dicom") / "anomaly_sr.dcm"
_SCHEME = "99MEDZSAD"
STUDY_SCORE = Code("STUDY_SCORE", _SCHEME, "Anomaly study score")
P_VALUE = Code("P_VALUE", _SCHEME, "Anomaly score p-value")
ANOMALY_FLAG = Code("ANOMALY_FLAG", _SCHEME, "Anomaly flag")
ANOMALY_HEAT = Code("ANOMALY_HEAT", _SCHEME, "Anomaly heat")
_VOLUME = Code("118565006", "SCT", "Volume")
_MAXIMUM = Code("56851009", "SCT", "Maximum")
_LESION = Code("52988006", "SCT", "Lesion")
_ABNORMAL = Code("49755003", "SCT", "Morphologically abnormal structure")
_IMAGING = Code("363679005", "SCT", "Imaging procedure")
_NO_UNITS = Code("1", "UCUM", "no units")
_ML = Code("mL", "UCUM", "milliliter")
_YES = Code("373066001", "SCT", "Yes")
_NO = Code("373067005", "SCT", "No")


@dataclass(frozen=True)
class SrEvidence:
    """What the report states about one study.

    Attributes:
        score: Study score (heat units, [0, 1]).
        threshold: Heat threshold of the mask (the operating point).
        threshold_source: The rule and its origin (:func:`medzsad.report.review_header.operating_point`).
        lesions: Lesions, strongest first (volume in mL, max heat).
        model: Model identity (architecture / description).
        weights: Weights identity (tag or file hash).
        p_value: Study p-value from a site profile, when one was used.
        flag: Study flagged as abnormal by a site profile, when one was used.
        smoke: Random weights were used (smoke run): SeriesDescription and a parameter say so.
        flag_rule: The flag rule's sentence (profile, alpha, error control), when a profile is used.
    """

    score: float
    threshold: float
    threshold_source: str
    lesions: Sequence[Lesion] = field(default_factory=tuple)
    model: str = ""
    weights: str = ""
    p_value: float | None = None
    flag: bool | None = None
    smoke: bool = False
    flag_rule: str = ""


@dataclass(frozen=True)
class SrWriteResult:
    """The written SR: file, SeriesInstanceUID, SOPInstanceUID and the number of lesion groups."""

    path: Path
    series_uid: str
    sop_instance_uid: str
    n_lesions: int


def _algorithm(ev: SrEvidence) -> hd.sr.AlgorithmIdentification:
    params = [
        f"operating point: heat >= {ev.threshold:.6g}",
        f"operating point from: {ev.threshold_source}",
        f"model: {ev.model or 'unknown'}",
        f"weights: {ev.weights or 'unknown'}",
    ]
    if ev.flag_rule:
        params.append(f"flag rule: {ev.flag_rule}")
    if ev.smoke:
        params.append("SMOKE RUN: random weights, scores are meaningless")
    return hd.sr.AlgorithmIdentification(
        name="medzsad AnomalyCLIP", version=medzsad.__version__, parameters=params
    )


def _study_group(ev: SrEvidence, uid: str, sources: list[hd.sr.SourceImageForMeasurementGroup]):  # noqa: ANN202
    algo = _algorithm(ev)
    measurements = [hd.sr.Measurement(STUDY_SCORE, float(ev.score), _NO_UNITS, algorithm_id=algo)]
    if ev.p_value is not None:
        measurements.append(hd.sr.Measurement(P_VALUE, float(ev.p_value), _NO_UNITS, algorithm_id=algo))
    evaluations = []
    if ev.flag is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(ANOMALY_FLAG, _YES if ev.flag else _NO))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=uid, identifier="study anomaly score"),
        finding_type=_ABNORMAL,
        algorithm_id=algo,
        measurements=measurements,
        qualitative_evaluations=evaluations or None,
        source_images=sources,
    )


def _lesion_group(lesion: Lesion, seg: pydicom.Dataset, uid: str, ev: SrEvidence):  # noqa: ANN202
    segment = hd.sr.ReferencedSegment(
        sop_class_uid=str(seg.SOPClassUID),
        sop_instance_uid=str(seg.SOPInstanceUID),
        segment_number=1,
        source_series=hd.sr.SourceSeriesForSegmentation(
            str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
        ),
    )
    algo = _algorithm(ev)
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=uid, identifier=f"lesion {lesion.label}"),
        referenced_segment=segment,
        finding_type=_LESION,
        algorithm_id=algo,
        measurements=[
            hd.sr.Measurement(_VOLUME, round(float(lesion.volume_ml), 6), _ML, algorithm_id=algo),
            hd.sr.Measurement(
                ANOMALY_HEAT, float(lesion.max_score), _NO_UNITS, derivation=_MAXIMUM, algorithm_id=algo
            ),
        ],
    )


def _read_sources(volume: Volume, out: Path) -> list[pydicom.Dataset]:
    if volume.source.kind != "dicom" or not volume.source.paths:
        raise OutputError(f"{out}: a DICOM SR needs a DICOM source series (source is {volume.source.kind!r})")
    from medzsad.io.dicom_common import read_dataset  # reads archive members too (export.zip!/...)

    try:
        return [read_dataset(p, header_only=True) for p in volume.source.paths]
    except (OSError, MedzsadError) as e:
        raise OutputError(f"{out}: cannot re-read the source series for the SR evidence ({e})") from e


def _content_digest(evidence: SrEvidence, seg_uid: str) -> str:
    """16 hex digits of what the report says: the same evidence gives the same UIDs (idempotent push)."""
    content = [
        evidence.score,
        evidence.p_value,
        evidence.flag,
        evidence.threshold,
        evidence.threshold_source,
        [(les.label, les.volume_ml, les.max_score) for les in evidence.lesions],
        evidence.model,
        evidence.weights,
        evidence.flag_rule,
        evidence.smoke,
        seg_uid,
    ]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]


def _measurement_report(groups: list[Any], device_uid: str) -> hd.sr.MeasurementReport:
    """TID 1500 with medzsad as the observing device."""
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid, name="medzsad", manufacturer_name=MEDZSAD_MANUFACTURER, model_name="AnomalyCLIP"
        ),
    )
    return hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_IMAGING,
        imaging_measurements=groups,
    )


def write_dicom_sr(
    volume: Volume, evidence: SrEvidence, seg_path: str | Path, out_path: str | Path
) -> SrWriteResult:
    """Write the study's Measurement Report next to its SEG.

    Args:
        volume: The scan (DICOM source; its files are the evidence).
        evidence: Score, operating point, lesions, model identity.
        seg_path: The study's DICOM SEG (lesion groups reference its segment 1).
        out_path: The ``.dcm`` file to write (atomically).

    Returns:
        The written file and its UIDs.

    Raises:
        OutputError: The source is not DICOM, the SEG cannot be read, or the SR cannot be built.
    """
    out = Path(out_path)
    sources = _read_sources(volume, out)
    try:
        seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    except (OSError, pydicom.errors.InvalidDicomError) as e:
        raise OutputError(f"{out}: cannot read the SEG {seg_path} the SR references ({e})") from e
    digest = _content_digest(evidence, str(seg.SOPInstanceUID))

    def uid(*parts: object) -> str:
        return str(
            generate_uid(entropy_srcs=[volume.source.series_uid, medzsad.__version__, *map(str, parts)])
        )

    first = sources[0]
    group_sources = [hd.sr.SourceImageForMeasurementGroup(str(first.SOPClassUID), str(first.SOPInstanceUID))]
    groups = [_study_group(evidence, uid("sr-study", digest), group_sources)]
    groups += [
        _lesion_group(les, seg, uid("sr-lesion", digest, les.label), evidence) for les in evidence.lesions
    ]
    report = _measurement_report(groups, uid("sr-device"))
    try:
        sr = hd.sr.Comprehensive3DSR(
            evidence=[*sources, seg],
            content=report,
            series_instance_uid=uid("sr-series"),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=uid("sr-instance", digest),
            instance_number=1,
            manufacturer=MEDZSAD_MANUFACTURER,
            is_complete=True,
            series_description=f"{SMOKE_PREFIX if evidence.smoke else ''}medzsad anomaly report",
        )
    except (ValueError, TypeError, AttributeError) as e:
        raise OutputError(f"{out}: cannot build the DICOM SR ({e})") from e
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        sr.save_as(tmp, enforce_file_format=True)
    return SrWriteResult(out, str(sr.SeriesInstanceUID), str(sr.SOPInstanceUID), len(evidence.lesions))
