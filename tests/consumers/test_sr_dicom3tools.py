"""The DICOM SR (TID 1500) of a study: dciodvfy 0 errors; dcentvfy passes for source + SEG + SR.

Written for the consumers' shuffled, tilted CT series with a site-profile p-value and flag, so
every optional content item is present; a broken copy shows dciodvfy does report SR errors.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from medzsad.analysis.lesions import find_lesions
from medzsad.errors import OutputError
from medzsad.report.sr_writer import SrEvidence, write_dicom_sr


def _errors(tool: str, files: list[Path]) -> list[str]:
    proc = subprocess.run([tool, *map(str, files)], capture_output=True, text=True, timeout=120)
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]


@pytest.fixture(scope="module")
def sr(dicom_study, tmp_path_factory: pytest.TempPathFactory):
    study = dicom_study
    lesions = find_lesions(study.heat, study.volume.affine_ras, 0.5, 0.0)
    assert len(lesions.lesions) >= 1
    evidence = SrEvidence(
        score=0.8125,
        threshold=0.5,
        threshold_source="heat >= 0.5; uncalibrated threshold (fixed value from the cohort file)",
        lesions=lesions.lesions,
        model="anomalyclip tiny",
        weights="random",
        p_value=0.0125,
        flag=True,
    )
    out = tmp_path_factory.mktemp("sr") / "anomaly_sr.dcm"
    return write_dicom_sr(study.volume, evidence, study.outputs.seg.path, out), lesions


def test_sr_passes_dciodvfy_and_dcentvfy_with_source_and_seg(
    sr, dicom_study, require_tool: Callable[[str], str]
) -> None:
    result, lesions = sr
    assert result.n_lesions == len(lesions.lesions)
    assert _errors(require_tool("dciodvfy"), [result.path]) == []
    sources = sorted(dicom_study.series.folder.glob("*.dcm"))
    assert _errors(require_tool("dcentvfy"), [*sources, dicom_study.outputs.seg.path, result.path]) == []


def test_dciodvfy_reports_errors_on_a_broken_sr(
    sr, tmp_path: Path, require_tool: Callable[[str], str]
) -> None:
    ds = pydicom.dcmread(sr[0].path)
    del ds.ContentSequence[0].ConceptNameCodeSequence
    del ds.ValueType
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    assert _errors(require_tool("dciodvfy"), [broken]) != []


def test_sr_holds_p_value_flag_and_same_uids_on_rewrite(sr, dicom_study, tmp_path: Path) -> None:
    result, lesions = sr
    ds = pydicom.dcmread(result.path)
    assert ds.StudyInstanceUID == dicom_study.series.study_uid and ds.SeriesNumber == 9903
    found = {}

    def walk(items) -> None:
        for it in items:
            name = it.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in it else ""
            if it.ValueType == "NUM":
                found.setdefault(name, []).append(float(it.MeasuredValueSequence[0].NumericValue))
            if it.ValueType == "CODE":
                found.setdefault(name, []).append(it.ConceptCodeSequence[0].CodeMeaning)
            walk(getattr(it, "ContentSequence", []))

    walk(ds.ContentSequence)
    assert found["Anomaly study score"] == [0.8125]
    assert found["Anomaly score p-value"] == [0.0125]
    assert found["Anomaly flag"] == ["Yes"]
    assert found["Anomaly heat"] == pytest.approx([les.max_score for les in lesions.lesions], abs=1e-6)
    assert found["Volume"] == pytest.approx([les.volume_ml for les in lesions.lesions], abs=1e-6)
    again = pydicom.dcmread(
        write_dicom_sr(
            dicom_study.volume,
            SrEvidence(
                0.8125,
                0.5,
                "heat >= 0.5; uncalibrated threshold (fixed value from the cohort file)",
                lesions.lesions,
                "anomalyclip tiny",
                "random",
                0.0125,
                True,
            ),
            dicom_study.outputs.seg.path,
            tmp_path / "again.dcm",
        ).path
    )
    assert (again.SeriesInstanceUID, again.SOPInstanceUID) == (ds.SeriesInstanceUID, ds.SOPInstanceUID)


def test_sr_needs_a_dicom_source(dicom_study, tmp_path: Path) -> None:
    import dataclasses

    nifti = dataclasses.replace(
        dicom_study.volume, source=dataclasses.replace(dicom_study.volume.source, kind="nifti")
    )
    with pytest.raises(OutputError, match="needs a DICOM source"):
        write_dicom_sr(nifti, SrEvidence(0.1, 0.5, "x"), dicom_study.outputs.seg.path, tmp_path / "x.dcm")
