"""An optional output that fails loses nothing else: the study is done, the failure is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medzsad.cli.run_cmd import _report
from medzsad.cohort.launch import run_cohort
from medzsad.report import review_outputs

CORE = ("heatmap.nii.gz", "mask.nii.gz", "slices.csv", "lesions.csv", "provenance.json")


def test_forced_seg_failure_keeps_the_study_and_records_the_failure(
    tmp_path: Path,
    seg_cohort,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = seg_cohort("heatmap, mask, slices, lesions, provenance, dicom-seg, dicom-pmap")
    summary = run_cohort(cfg)
    assert (summary.n_done, summary.n_failed, summary.n_output_failures) == (1, 0, 1)
    assert _report(summary, quiet=False) == 0  # the study stands: exit 0, and the terminal says so
    said = capsys.readouterr()
    assert ", 1 optional output not written ->" in said.out
    assert f"medzsad: 1 optional output not written; see {summary.errors_csv}" in said.err
    out = tmp_path / "out"
    studies = pd.read_csv(out / "studies.csv", keep_default_na=False)
    row = studies.iloc[0]
    assert row["status"] == "done" and row["error"] == ""
    assert row["output_errors"] == "dicom-seg: OutputError"
    folder = out / "studies" / row["safe_id"]
    for name in CORE:
        assert (folder / name).is_file(), name
    assert not (folder / review_outputs.SEG_FILE).exists()
    assert (folder / review_outputs.PMAP_FILE).is_file()  # the other optional output is still written
    errors = pd.read_csv(out / "errors.csv", keep_default_na=False)
    assert errors[["study_id", "stage", "output", "error_type"]].values.tolist() == [
        ["Dicom Study/01", "output", "dicom-seg", "OutputError"]
    ]
    assert "forced SEG failure" in errors.loc[0, "message"]
    # the log names the study by its pseudonym only, not by its id or folder name, and (ids hidden)
    # leaves out the message, which names files (docs/privacy.md); errors.csv has it
    warning = next(r.getMessage() for r in caplog.records if "optional output dicom-seg" in r.getMessage())
    assert "Dicom" not in warning and row["safe_id"] not in warning and "OutputError" in warning
    assert "forced SEG failure" not in warning and "--show-ids" in warning
    prov = json.loads((folder / "provenance.json").read_text())
    assert [f["output"] for f in prov["output_failures"]] == ["dicom-seg"]
