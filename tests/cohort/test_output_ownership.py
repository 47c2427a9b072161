"""Issue 16: only what medzsad created in an output folder is ever removed or replaced."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medzsad.cli import EXIT_FAILED_STUDIES, main
from medzsad.cohort.ledger import Ledger

from .conftest import blob_volume, make_cohort, write_cohort_yaml


def test_user_files_in_the_output_folder_survive_runs(tmp_path: Path) -> None:
    info = make_cohort(tmp_path / "data", n_nifti=1)
    out = tmp_path / "out"
    (out / "studies" / "old.partial-keep").mkdir(parents=True)
    (out / "studies" / "old.partial-keep" / "notes.txt").write_text("mine")
    (out / "results.tmp-2024").write_text("mine too")
    (out / "studies" / "x.tmp-99").write_text("and this")
    # a same-named study folder that medzsad did not create
    (out / "studies" / "nifti-0").mkdir()
    (out / "studies" / "nifti-0" / "user.txt").write_text("user data")
    cfg = write_cohort_yaml(tmp_path / "c.yaml", info["manifest"], out)
    assert main(["run", str(cfg), "--quiet"]) == EXIT_FAILED_STUDIES
    assert main(["run", str(cfg), "--quiet"]) == EXIT_FAILED_STUDIES
    assert (out / "studies" / "old.partial-keep" / "notes.txt").read_text() == "mine"
    assert (out / "results.tmp-2024").read_text() == "mine too"
    assert (out / "studies" / "x.tmp-99").read_text() == "and this"
    assert (out / "studies" / "nifti-0" / "user.txt").read_text() == "user data"
    assert not (out / "studies" / "nifti-0" / "heatmap.nii.gz").exists()
    errors = pd.read_csv(out / "errors.csv").set_index("study_id")
    assert errors.loc["nifti-0", "error_type"] == "OutputError"
    assert "was not created by medzsad" in errors.loc["nifti-0", "message"]
    # the other studies were written and published
    studies = pd.read_csv(out / "studies.csv").set_index("study_id")
    assert studies.loc["Dicom Study/01", "status"] == "done"


def test_leftovers_medzsad_created_are_removed(tmp_path: Path) -> None:
    info = make_cohort(tmp_path / "data", n_nifti=1, corrupt=False)
    out = tmp_path / "out"
    cfg = write_cohort_yaml(tmp_path / "c.yaml", info["manifest"], out)
    assert main(["run", str(cfg), "--quiet"]) == 0
    # what a run killed mid-study leaves: a claimed partial folder and a claimed temp file
    stale = out / "studies" / "nifti-0.partial-424242"
    stale.mkdir()
    (stale / "heatmap.nii.gz.tmp-424242").write_bytes(b"x")
    (out / "studies.csv.tmp-424242").write_text("x")
    with Ledger(out / "ledger.sqlite") as ledger:
        ledger.claim("studies/nifti-0.partial-424242", "partial")
        ledger.claim("studies.csv.tmp-424242", "temp")
    assert main(["run", str(cfg), "--quiet", "--force"]) == 0
    assert not stale.exists() and not (out / "studies.csv.tmp-424242").exists()
    with Ledger(out / "ledger.sqlite") as ledger:
        owned = ledger.owned()
    assert owned.get("studies/nifti-0") == "study"
    assert not [p for p, k in owned.items() if k == "partial"]
    assert (out / "studies" / "nifti-0" / "heatmap.nii.gz").is_file()


def test_another_input_under_the_same_name_is_said_before_its_results_are_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every CD holds a DICOM/ folder: two patients' inputs can share a name, and so a study id."""
    for who, seed in (("a", 1), ("b", 2)):
        data, _ = blob_volume((24, 20, 6), seed, lesion=False)
        (tmp_path / who).mkdir()
        nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / who / "scan.nii.gz")
    out = tmp_path / "out"
    assert main(["run", "-i", str(tmp_path / "a" / "scan.nii.gz"), "-o", str(out), "--smoke", "-q"]) == 0
    assert "its input is not the one" not in caplog.text
    assert main(["run", "-i", str(tmp_path / "b" / "scan.nii.gz"), "-o", str(out), "--smoke", "-q"]) == 0
    assert "its results are replaced" in caplog.text and "study s-" in caplog.text
    assert main(["run", "-i", str(tmp_path / "b" / "scan.nii.gz"), "-o", str(out), "--smoke", "-q"]) == 0
    assert caplog.text.count("its results are replaced") == 1  # the same input again: skipped, no warning


def test_a_done_study_whose_input_went_missing_is_not_said_to_be_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It fails as a study (said before the model loads); its earlier results are not replaced."""
    rows = ["study_id,path"]
    for name, seed in (("a", 1), ("b", 2)):
        data, _ = blob_volume((24, 20, 6), seed, lesion=False)
        nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / f"{name}.nii.gz")
        rows.append(f"{name},{name}.nii.gz")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    cfg = write_cohort_yaml(tmp_path / "c.yaml", tmp_path / "m.csv", tmp_path / "out")
    assert main(["run", str(cfg), "--smoke", "-q"]) == 0
    (tmp_path / "b.nii.gz").unlink()
    assert main(["run", str(cfg), "--smoke", "-q"]) == EXIT_FAILED_STUDIES
    assert "1 of 2 studies have no input file" in caplog.text
    assert "its results are replaced" not in caplog.text


def test_a_folder_published_after_the_main_process_died_is_the_next_runs_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer (or Ray actor) outlived a ``kill -9`` of the run and published a study's folder.

    The main process never recorded it. The next run must recompute it as its own folder; it
    failed as 'not created by medzsad', for good (a user walk-through: 3 of 3 kills).
    """
    from medzsad.cohort.launch import run_cohort
    from medzsad.cohort.options import RunOptions
    from medzsad.cohort.recording import StudyRecorder

    info = make_cohort(tmp_path / "data", n_nifti=1, corrupt=False, shape=(20, 16, 6))
    out = tmp_path / "out"
    cfg = write_cohort_yaml(tmp_path / "c.yaml", info["manifest"], out, extra="executor: {workers: 0}\n")

    def died(self: StudyRecorder, job: object, result: object) -> None:
        raise KeyboardInterrupt  # the main process is gone once the folder is published

    with monkeypatch.context() as m:
        m.setattr(StudyRecorder, "record", died)
        with pytest.raises(KeyboardInterrupt):
            run_cohort(cfg, RunOptions(progress="off"))
    published = sorted(p.name for p in (out / "studies").iterdir())
    assert published and not any(".partial" in name for name in published)
    summary = run_cohort(cfg, RunOptions(progress="off"))
    assert summary.n_failed == 0 and summary.n_done >= len(published)
    studies = pd.read_csv(out / "studies.csv")
    assert set(studies["status"]) == {"done"}
    assert all((out / "studies" / name / "heatmap.nii.gz").is_file() for name in published)


def test_a_failed_study_leaves_no_claim_on_a_folder_it_never_published(tmp_path: Path) -> None:
    """The final folder claimed at the start of a study is released when the study fails."""
    info = make_cohort(tmp_path / "data", n_nifti=1, corrupt=True, shape=(20, 16, 6))
    out = tmp_path / "out"
    cfg = write_cohort_yaml(tmp_path / "c.yaml", info["manifest"], out)
    assert main(["run", str(cfg), "--quiet"]) == EXIT_FAILED_STUDIES
    failed = pd.read_csv(out / "studies.csv").query("status == 'failed'")["safe_id"].tolist()
    assert failed
    owned = Ledger(out / "ledger.sqlite").owned()
    for safe_id in failed:
        assert f"studies/{safe_id}" not in owned and not (out / "studies" / safe_id).exists()


def test_another_cohort_in_the_same_folder_leaves_no_stale_metrics_or_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """metrics.json and report.html of an earlier cohort described other studies than studies.csv."""
    info = make_cohort(tmp_path / "data", n_nifti=1, corrupt=False, shape=(20, 16, 6))
    out = tmp_path / "out"
    first = write_cohort_yaml(tmp_path / "a.yaml", info["manifest"], out, name="first")
    first.write_text(first.read_text() + "  outputs: [heatmap, mask, provenance, html]\n")
    assert main(["run", str(first), "-q"]) == 0
    assert (out / "metrics.json").is_file() and (out / "report.html").is_file()  # labels were given
    vol, _ = blob_volume((20, 16, 6), 9, lesion=False)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "one.nii.gz")
    args = [
        "run",
        "-i",
        str(tmp_path / "one.nii.gz"),
        "-o",
        str(out),
        "--formats",
        "nifti",
        "--smoke",
        "--fast",
    ]
    assert main([*args, "-q"]) == 0
    assert len(pd.read_csv(out / "studies.csv")) == 1
    assert not (out / "metrics.json").exists() and not (out / "report.html").exists()
    assert "held cohort 'first'" in caplog.text
