"""Issue 16 PHI policy: one switch (output.show_ids / --show-ids) for every channel."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from medzsad.cli import EXIT_FAILED_STUDIES, main
from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series

from .conftest import blob_volume, write_cohort_yaml

PATIENT = "DOE^JANE"


def _cohort(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A folder with two DICOM studies, and a broken NIfTI under a folder named after a patient."""
    data = tmp_path / "data"
    shared = data / "export"
    a_lps = np.diag([1.0, 1.0, 3.0, 1.0])
    shared.mkdir(parents=True)
    for i in range(2):  # two studies' files mixed in one folder: no subfolder can name them
        vol, _ = blob_volume((24, 20, 6), 20 + i, lesion=False)
        for f in write_dicom_series(vol, a_lps, tmp_path / f"s{i}", SeriesSpec("MR", f"p{i}", f"study{i}")):
            f.rename(shared / f"s{i}_{f.name}")
    first = [next(shared.glob(f"s{i}_*")) for i in range(2)]
    uids = sorted({str(pydicom.dcmread(f).StudyInstanceUID) for f in first})
    bad = data / PATIENT / "scan.nii.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x1f\x8b\x08\x00 broken")
    vol, _ = blob_volume((24, 20, 6), 3, lesion=False)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), data / "ok.nii.gz")
    cfg = write_cohort_yaml(tmp_path / "c.yaml", tmp_path / "unused.csv", tmp_path / "out")
    text = cfg.read_text().replace(
        f"manifest: {tmp_path / 'unused.csv'}", f"paths: [{shared}, {bad}, {data / 'ok.nii.gz'}]"
    )
    cfg.write_text(text + "  outputs: [heatmap, slices, slicer]\n")
    return cfg, tmp_path / "out", uids


def _everything_written(out: Path) -> str:
    parts = [str(p.relative_to(out)) for p in out.rglob("*")]
    for p in out.rglob("*"):
        if p.is_file() and p.suffix in (".csv", ".py", ".html", ".json"):
            parts.append(p.read_text(errors="replace"))
    with sqlite3.connect(out / "ledger.sqlite") as db:
        parts += [repr(r) for r in db.execute("SELECT study_id, safe_id FROM studies")]
    return "\n".join(parts)


def test_ids_hidden_by_default_on_every_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    cfg, out, uids = _cohort(tmp_path)
    caplog.set_level(logging.INFO)  # -vv debug lines may name files (docs/privacy.md)
    assert main(["run", str(cfg)]) == EXIT_FAILED_STUDIES
    captured = capsys.readouterr()
    console = captured.err + captured.out + caplog.text
    for secret in (*uids, PATIENT, "export-", "scan", str(tmp_path / "data")):  # input paths, ids
        assert secret not in console, secret
    # the reason reaches the terminal; the study's own path shows as its visible id
    assert "NiftiError at load: <s-" in console and "cannot read the NIfTI file" in console
    written = _everything_written(out)
    for uid in uids:
        assert uid not in written  # not a study id, folder name, ledger key or Slicer script path
    studies = pd.read_csv(out / "studies.csv", keep_default_na=False)
    pseudonyms = [s for s in studies["study_id"] if s.startswith("export-")]
    assert len(pseudonyms) == 2 and all(len(s) == len("export-") + 10 for s in pseudonyms)
    assert (studies["status"] == "done").sum() == 3
    # the dry run names studies as the progress lines did
    assert main(["run", str(cfg), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "export" not in dry and all(uid not in dry for uid in uids)


def test_show_ids_shows_folder_names_and_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, out, _ = _cohort(tmp_path)
    assert main(["run", str(cfg), "--show-ids"]) == EXIT_FAILED_STUDIES
    err = capsys.readouterr().err
    folders = {p.name for p in (out / "studies").iterdir()}
    shown = {line.split("] ", 1)[1].split(" ", 1)[0] for line in err.splitlines() if line.startswith("[")}
    assert shown == folders | {"scan"}  # console ids are the output folders' names
    assert "cannot read the NIfTI file" in err


def test_switching_show_ids_recomputes_nothing(cohort: dict[str, Path]) -> None:
    """A display switch changes what is shown, never a study's files: nothing reruns for it."""
    from medzsad.cohort.launch import run_cohort
    from medzsad.cohort.options import RunOptions

    first = run_cohort(cohort["yaml"], RunOptions(progress="off"))
    done = first.n_done
    assert done == 3
    overlay = (cohort["out"] / "studies" / "nifti-0" / "overlay.png").read_bytes()
    for show in (True, False):
        again = run_cohort(cohort["yaml"], RunOptions(progress="off", show_ids=show))
        assert (again.n_done, again.n_skipped) == (0, done)
    assert (cohort["out"] / "studies" / "nifti-0" / "overlay.png").read_bytes() == overlay


def test_a_dicomdir_studys_folder_is_hidden_in_shown_errors(tmp_path: Path) -> None:
    """A DICOMDIR's files lie in the folder it sits in, which may be named after the patient."""
    from medzsad.cohort.recording import shown_error
    from medzsad.config import load_cohort
    from medzsad.study.types import StudyFinish, StudyInput, StudyJob

    folder = tmp_path / "DOE_JOHN"
    dicomdir = folder / "DICOMDIR"
    cfg = load_cohort(write_cohort_yaml(tmp_path / "c.yaml", tmp_path / "m.csv", tmp_path / "out"))
    job = StudyJob(StudyInput("DOE_JOHN", str(dicomdir)), "DOE_JOHN", "h", "c", "s-0123456789")
    error = f"{folder}/PT000000/ST000000/SE000000/IM000000 +49 files: cannot decode"
    shown = shown_error(cfg, job, StudyFinish("failed", error=error, error_type="DicomError"))
    assert "DOE_JOHN" not in shown and shown.startswith("DicomError at load: <s-0123456789>/PT000000/")


def test_a_studys_own_folder_among_others_is_hidden_in_shown_errors(tmp_path: Path) -> None:
    """run over export/ names each study after its subfolder, which may carry the patient's name."""
    from medzsad.cohort.recording import shown_error
    from medzsad.config import load_cohort
    from medzsad.study.types import StudyFinish, StudyInput, StudyJob

    export = tmp_path / "export"
    seg = export / "DOE^JOHN_MRN0002" / "liver_seg.dcm"
    cfg = load_cohort(write_cohort_yaml(tmp_path / "c.yaml", tmp_path / "m.csv", tmp_path / "out"))
    job = StudyJob(StudyInput("export-1", str(export), (str(seg),)), "export-1", "h", "c", "s-0123456789")
    error = f"no series can be scored (#1 SEG 'Liver' ({seg}): not an image)"
    shown = shown_error(cfg, job, StudyFinish("failed", error=error, error_type="InputError"))
    assert "DOE" not in shown and "(<s-0123456789>/liver_seg.dcm)" in shown


def test_the_studys_output_folder_is_hidden_in_shown_errors(tmp_path: Path) -> None:
    """An output folder is named after the study: studies/SMITH_JOHN_MRN111222 exists and was not ours."""
    from medzsad.cohort.recording import shown_error
    from medzsad.config import load_cohort
    from medzsad.study.types import StudyFinish, StudyInput, StudyJob

    cfg = load_cohort(write_cohort_yaml(tmp_path / "c.yaml", tmp_path / "m.csv", tmp_path / "out"))
    sid = "SMITH_JOHN_MRN111222"
    job = StudyJob(StudyInput(sid, str(tmp_path / "in" / f"{sid}.nii.gz")), sid, "h", "c", "s-0123456789")
    error = f"{cfg.out_dir}/studies/{sid} exists and was not created by medzsad; it is left untouched"
    shown = shown_error(cfg, job, StudyFinish("failed", error=error, error_type="OutputError", stage="write"))
    assert sid not in shown and f"{cfg.out_dir}/studies/<s-0123456789> exists" in shown
