"""Issue 22 item 7: geometry warnings reach the user; ``pipeline.on_gap`` decides what a gap does.

The issue's real file: pydicom's 4-slice head CT (dicomdirtests/77654033/CT2: positions -99.48,
103.02, 104.27, 105.52 mm, so 161 slices of 1.25 mm are missing between the first two) was "done"
with two slices placed ~67 and ~135 mm from where they were acquired, and "161 missing slices" only
in provenance.json. Here it is exported as a PACS would (restamped into its own study) and run.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_factory import SeriesSpec, write_series
from real_studies import DICOMDIR_SETS, new_study_uid, restamp
from tiny_model import TINY_MODEL

from medzsad.cli import EXIT_CONFIG, EXIT_FAILED_STUDIES, EXIT_OK, main
from medzsad.errors import DicomError
from medzsad.io.readers import load_volume

GAP = "161 missing slice(s)"


def _head_ct_with_gap(root: Path) -> list[Path]:
    uid = new_study_uid()
    files = sorted((DICOMDIR_SETS / "77654033" / "CT2").iterdir())
    out = [restamp(f, root / "head_ct" / f.name, uid) for f in files]
    z = sorted(float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in out)
    assert np.allclose(np.diff(z), [202.5, 1.25, 1.25], atol=1e-3)  # the real gap, untouched
    return out


def _cohort(tmp: Path, name: str, on_gap: str | None, inputs: list[Path]) -> Path:
    gap = f"  on_gap: {on_gap}\n" if on_gap is not None else ""
    paths = "".join(f"    - {p}\n" for p in inputs)
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(
        f"name: {name}\ninputs:\n  paths:\n{paths}"
        # ct-head wants 5 slices: this 4-slice export is scored as the issue saw it
        f"pipeline:\n  skip_empty_slices: false\n  series: {{min_slices: 4}}\n{gap}"
        f"{TINY_MODEL}output:\n  dir: {tmp / name}\n  formats: [nifti, html]\n"
        "executor: {workers: 1, writers: 1}\n"
    )
    return cfg


def test_io_gap_policy_is_its_own(tmp_path: Path) -> None:
    """Gaps have a policy of their own: refusing gaps does not refuse a tilted, gapless series."""
    files = _head_ct_with_gap(tmp_path)
    with pytest.raises(DicomError, match=r"161 missing slice\(s\).*pipeline.on_gap: fail") as e:
        load_volume(str(tmp_path / "head_ct"), gaps="error")
    assert str(tmp_path / "head_ct") in str(e.value)
    resampled = load_volume(str(tmp_path / "head_ct"), gaps="resample")
    assert resampled.shape_ijk[2] == 165 and np.isclose(resampled.spacing_mm[2], 1.25)
    kept = [i for i, uid in enumerate(resampled.source.sop_instance_uids) if uid]
    assert kept == [0, 162, 163, 164]  # the acquired slices sit where they were acquired
    by_uid = {str(pydicom.dcmread(f).SOPInstanceUID): f for f in files}
    for k in kept:
        z = resampled.affine_ras @ np.array([0, 0, k, 1.0])
        stored = pydicom.dcmread(by_uid[resampled.source.sop_instance_uids[k]]).ImagePositionPatient
        assert np.isclose(z[2], float(stored[2]), atol=1e-3)
    tilted = write_series(tmp_path / "tilted", SeriesSpec(tilt_shift_mm=0.7, n_slices=4))
    v = load_volume(str(tilted[0].parent), gaps="error")
    assert any("gantry tilt" in w for w in v.warnings)


def test_a_gap_reaches_studies_csv_the_page_and_the_terminal(tmp_path: Path, capsys, caplog) -> None:
    _head_ct_with_gap(tmp_path / "data")
    coronal = SeriesSpec(n_slices=6, iop=(1, 0, 0, 0, 0, -1), description="COR 2mm", series_number=3)
    write_series(tmp_path / "data" / "coronal_only", coronal)
    inputs = [tmp_path / "data" / "head_ct", tmp_path / "data" / "coronal_only"]
    cfg = _cohort(tmp_path, "warn", None, inputs)  # on_gap: warn is the default
    capsys.readouterr()
    assert main(["run", str(cfg), "--show-ids"]) == EXIT_OK
    err = capsys.readouterr().err
    studies = pd.read_csv(tmp_path / "warn" / "studies.csv", keep_default_na=False).set_index("study_id")
    assert list(studies["status"]) == ["done", "done"]
    head, cor = studies.loc["head_ct", "warnings"], studies.loc["coronal_only", "warnings"]
    assert GAP in head and "gap(s) of about 162x the median spacing 1.25 mm" in head
    assert cor.startswith("no axial series; used coronal #3 CT 'COR 2mm'")
    # the terminal: the per-study line, and a logged warning naming the study (shown with --quiet)
    assert "head_ct done score=" in err and GAP in err.split("head_ct done", 1)[1].splitlines()[0]
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(m.startswith(f"study head_ct: {GAP}") for m in logged)
    assert "study coronal_only: no axial series; used coronal #3 CT 'COR 2mm'" in logged
    # the page: in the study table and in the study's section
    page = (tmp_path / "warn" / "report.html").read_text()
    assert '<th scope="col">Warnings</th>' in page and page.count(GAP) >= 2
    prov = json.loads((tmp_path / "warn" / "studies" / "head_ct" / "provenance.json").read_text())
    assert any(GAP in w for w in prov["warnings"])
    # warn scores on SimpleITK's grid (what Slicer shows): the mean spacing, stated as a warning
    heat = nib.load(tmp_path / "warn" / "studies" / "head_ct" / "heatmap.nii.gz")
    assert heat.shape[2] == 4 and np.isclose(np.linalg.norm(heat.affine[:3, 2]), 205.0 / 3, atol=1e-3)


def test_on_gap_fail_and_resample(tmp_path: Path) -> None:
    _head_ct_with_gap(tmp_path / "data")
    study = tmp_path / "data" / "head_ct"
    assert main(["run", str(_cohort(tmp_path, "fail", "fail", [study])), "-q"]) == EXIT_FAILED_STUDIES
    errors = pd.read_csv(tmp_path / "fail" / "errors.csv", keep_default_na=False)
    (message,) = errors["message"]
    assert GAP in message and "pipeline.on_gap: fail" in message and str(study) in message
    assert list(errors["error_type"]) == ["DicomError"] and list(errors["stage"]) == ["load"]

    assert main(["run", str(_cohort(tmp_path, "resample", "resample", [study])), "-q"]) == EXIT_OK
    row = pd.read_csv(tmp_path / "resample" / "studies.csv", keep_default_na=False).iloc[0]
    assert GAP in row["warnings"]
    assert "resampled onto a regular grid: 165 slices every 1.25 mm" in row["warnings"]
    heat = nib.load(tmp_path / "resample" / "studies" / row["safe_id"] / "heatmap.nii.gz")
    assert heat.shape[2] == 165 and np.isclose(heat.affine[2, 2], 1.25)


def test_on_gap_is_checked_when_the_file_is_read(tmp_path: Path, capsys) -> None:
    cfg = _cohort(tmp_path, "bad", "skip", [tmp_path])
    capsys.readouterr()
    assert main(["run", str(cfg)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "on_gap" in err and "'warn', 'fail' or 'resample'" in err and len(err.strip().splitlines()) == 1
