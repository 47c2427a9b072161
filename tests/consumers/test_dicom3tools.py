"""Every DICOM object we write passes dciodvfy with zero errors, and dcentvfy with its source series.

Warnings are allowed; they are printed (``pytest -s``) so they can be reviewed. Each validator is
first shown to report errors on a deliberately broken object, so a silent tool cannot pass.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pydicom


def _run(tool: str, files: list[Path]) -> tuple[list[str], list[str], int]:
    proc = subprocess.run([tool, *map(str, files)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    warnings = [ln for ln in lines if ln.startswith("Warning")]
    return errors, warnings, proc.returncode


def _our_objects(study) -> dict[str, Path]:
    out = study.outputs
    return {"seg": out.seg.path, "parametric_map": out.parametric_map.path, **study.extra_segs}


def test_dciodvfy_reports_zero_errors(dicom_study, require_tool: Callable[[str], str]) -> None:
    tool = require_tool("dciodvfy")
    for name, path in _our_objects(dicom_study).items():
        errors, warnings, _ = _run(tool, [path])
        print(f"dciodvfy {name}: {len(errors)} errors, warnings: {warnings}")
        assert errors == [], f"{name}: {errors}"


def test_dciodvfy_catches_a_broken_seg(
    dicom_study, require_tool: Callable[[str], str], tmp_path: Path
) -> None:
    ds = pydicom.dcmread(dicom_study.outputs.seg.path)
    del ds.SegmentSequence
    ds.save_as(tmp_path / "broken.dcm")
    errors, _, _ = _run(require_tool("dciodvfy"), [tmp_path / "broken.dcm"])
    assert any("SegmentSequence" in e for e in errors)


def test_dcentvfy_with_source_series(dicom_study, require_tool: Callable[[str], str]) -> None:
    tool = require_tool("dcentvfy")
    sources = sorted(dicom_study.series.folder.glob("*.dcm"))
    objects = _our_objects(dicom_study)
    single_frame = [p for k, p in objects.items() if k != "multiframe_source"]
    errors, warnings, rc = _run(tool, [*sources, *single_frame])
    print(f"dcentvfy: {len(errors)} errors, warnings: {warnings}")
    assert errors == [] and rc == 0, errors
    errors, _, rc = _run(tool, [dicom_study.enhanced_source, objects["multiframe_source"]])
    assert errors == [] and rc == 0, errors


def test_dcentvfy_catches_a_patient_mismatch(
    dicom_study, require_tool: Callable[[str], str], tmp_path: Path
) -> None:
    ds = pydicom.dcmread(dicom_study.outputs.seg.path)
    ds.PatientName = "Other^Patient"
    ds.save_as(tmp_path / "other.dcm")
    sources = sorted(dicom_study.series.folder.glob("*.dcm"))
    errors, _, rc = _run(require_tool("dcentvfy"), [*sources, tmp_path / "other.dcm"])
    assert rc != 0 and any("PatientName" in e for e in errors)
