"""Issue 22 item 9: DICOM SEG / Parametric Map / SR of a source without patient geometry.

A radiograph, an ultrasound (real files from pydicom-data, no ImagePositionPatient) and a NIfTI file
are scored; their DICOM objects are "not applicable", said in the study's notes (studies.csv,
provenance.json, the review page), never an error row. A CT series next to them gets all three.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from nibabel.testing import data_path
from real_studies import ct5n, new_study_uid, real, restamp

from medzsad.cli import EXIT_OK, main

NO_GEOMETRY = (
    "not applicable: the source DICOM image has no patient geometry (no ImagePositionPatient (0020,0032)"
)


def test_dicom_objects_are_not_applicable_without_patient_geometry(tmp_path: Path) -> None:
    export = tmp_path / "export"
    restamp(real("RG1_UNCI.dcm"), export / "radiograph" / "cr.dcm", new_study_uid())
    restamp(real("OBXXXX1A_2frame.dcm"), export / "ultrasound" / "us.dcm", new_study_uid())
    uid = new_study_uid()
    for f in ct5n():
        restamp(f, export / "ct" / f.name, uid)
    shutil.copy(Path(data_path) / "anatomical.nii", export / "anatomical.nii")
    out = tmp_path / "out"
    formats = "nifti,html,dicom-seg,dicom-pmap,dicom-sr"
    assert main(["run", "-i", str(export), "-o", str(out), "--smoke", "-q", "--formats", formats]) == EXIT_OK

    errors = pd.read_csv(out / "errors.csv", keep_default_na=False)
    assert errors.empty, errors.to_dict("records")  # no error row: nothing failed
    studies = pd.read_csv(out / "studies.csv", keep_default_na=False).set_index("study_id")
    assert set(studies["status"]) == {"done"} and set(studies["output_errors"]) == {""}
    for sid in ("radiograph", "ultrasound"):
        notes = studies.loc[sid, "notes"]
        for fmt in ("dicom-pmap", "dicom-seg", "dicom-sr"):
            assert f"{fmt}: {NO_GEOMETRY}" in notes, (sid, notes)
        assert not (out / "studies" / studies.loc[sid, "safe_id"] / "dicom").exists()
    nifti = studies.loc["anatomical", "notes"]
    assert "dicom-seg: not applicable: the source is a NIfTI file, not DICOM" in nifti
    assert "dicom-sr: not applicable: the source is a NIfTI file, not DICOM" in nifti
    ct = out / "studies" / studies.loc["ct", "safe_id"]
    assert studies.loc["ct", "notes"] == ""
    assert {p.name for p in (ct / "dicom").iterdir()} == {
        "anomaly_seg.dcm",
        "heatmap_pmap.dcm",
        "anomaly_sr.dcm",
    }
    prov = json.loads(
        (out / "studies" / studies.loc["radiograph", "safe_id"] / "provenance.json").read_text()
    )
    assert any(NO_GEOMETRY in n for n in prov["review_skipped"]) and prov["output_failures"] == []
    page = (out / "report.html").read_text()
    assert "Notes" in page and NO_GEOMETRY in page
