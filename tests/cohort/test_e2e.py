"""End to end through the CLI: outputs, geometry, failures, resume, SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sklearn.metrics import average_precision_score, roc_auc_score

from medzsad.cli import EXIT_FAILED_STUDIES, main

from .conftest import make_cohort, write_cohort_yaml

STUDY_FILES = ("heatmap.nii.gz", "mask.nii.gz", "slices.csv", "lesions.csv", "overlay.png", "provenance.json")
DETERMINISTIC = ("heatmap.nii.gz", "mask.nii.gz", "slices.csv", "lesions.csv", "overlay.png")


def _sitk_affine_ras(folder: Path) -> tuple[tuple[int, ...], np.ndarray]:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    a = np.eye(4)
    a[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
    a[:3, 3] = img.GetOrigin()
    return img.GetSize(), np.diag([-1.0, -1.0, 1.0, 1.0]) @ a


def test_cli_run_outputs_geometry_errors_and_rerun(cohort, capsys):
    out: Path = cohort["out"]
    code = main(["run", str(cohort["yaml"]), "--quiet"])
    assert code == EXIT_FAILED_STUDIES
    studies = pd.read_csv(out / "studies.csv", keep_default_na=False)
    assert list(studies["status"]) == ["done", "done", "done", "failed"]
    assert sorted(studies.loc[studies.status == "done", "rank"].astype(int)) == [1, 2, 3]
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["study_id"]) == ["broken-study"] and errors.loc[0, "stage"] == "load"
    assert errors.loc[0, "error_type"] and len(errors.loc[0, "message"]) > 5
    dicom_row = studies[studies.study_id == "Dicom Study/01"].iloc[0]
    safe = dicom_row["safe_id"]
    assert "/" not in safe and " " not in safe and safe.startswith("Dicom_Study_01")
    for sid in studies.loc[studies.status == "done", "safe_id"]:
        for name in STUDY_FILES:
            assert (out / "studies" / sid / name).is_file(), (sid, name)
    # DICOM study: heat map and mask carry SimpleITK's geometry of the series exactly
    size, affine = _sitk_affine_ras(cohort["dicom_dir"])
    for name, dtype in (("heatmap.nii.gz", np.uint16), ("mask.nii.gz", np.uint8)):
        img = nib.load(out / "studies" / safe / name)
        assert img.shape == tuple(size) and img.get_data_dtype() == dtype
        np.testing.assert_allclose(img.affine, affine, atol=1e-4)
        assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    # NIfTI study: same shape and affine as the source file
    src = nib.load(cohort["manifest"].parent / "vol0.nii.gz")
    heat = nib.load(out / "studies" / "nifti-0" / "heatmap.nii.gz")
    assert heat.shape == src.shape
    np.testing.assert_allclose(heat.affine, src.affine, atol=1e-5)
    h = np.asarray(heat.dataobj)
    assert h.min() >= 0.0 and h.max() <= 1.0 and h.max() > 0
    slices = pd.read_csv(out / "studies" / "nifti-0" / "slices.csv")
    # slices.csv gained the axis (issue 21): one block of rows per scored axis, here axial only
    columns = ["axis", "slice_index", "position_mm", "score", "map_max", "skipped", "smoke_run"]
    assert list(slices.columns) == columns
    assert set(slices["axis"]) == {"axial"}
    assert len(slices) == src.shape[2] and slices["position_mm"].diff().dropna().round(6).eq(2.5).all()
    prov = json.loads((out / "studies" / "nifti-0" / "provenance.json").read_text())
    assert prov["smoke_run"] is True and len(prov["hashes"]["config_hash"]) == 64
    # metrics.json equals scikit-learn on the same scores
    metrics = json.loads((out / "metrics.json").read_text())
    done = studies[studies.status == "done"]
    y, s = done["label"].astype(int), done["score"].astype(float)
    assert metrics["study_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert metrics["study_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    gts, heats = [], []
    for sid, mask_name in (("nifti-0", "vol0_mask.nii.gz"), ("nifti-1", "vol1_mask.nii.gz")):
        gts.append(np.asarray(nib.load(cohort["manifest"].parent / mask_name).dataobj).ravel() > 0)
        heats.append(np.asarray(nib.load(out / "studies" / sid / "heatmap.nii.gz").dataobj).ravel())
    dicom_gt = nib.load(cohort["manifest"].parent / "dicom_study_mask.nii.gz")
    gts.insert(0, np.asarray(dicom_gt.dataobj).ravel() > 0)
    heats.insert(0, np.asarray(nib.load(out / "studies" / safe / "heatmap.nii.gz").dataobj).ravel())
    assert metrics["voxel_auroc"] == pytest.approx(roc_auc_score(np.concatenate(gts), np.concatenate(heats)))
    assert 0.0 <= metrics["dice"] <= 1.0 and 0.0 <= metrics["aupro"] <= 1.0
    # second run: nothing recomputed, files untouched
    stamps = {p: p.stat().st_mtime_ns for p in (out / "studies").rglob("*") if p.is_file()}
    assert main(["run", str(cohort["yaml"]), "--quiet"]) == EXIT_FAILED_STUDIES
    assert {p: p.stat().st_mtime_ns for p in (out / "studies").rglob("*") if p.is_file()} == stamps
    with sqlite3.connect(out / "ledger.sqlite") as db:
        attempts = dict(db.execute("SELECT study_id, attempts FROM studies"))
    assert attempts == {"Dicom Study/01": 1, "nifti-0": 1, "nifti-1": 1, "broken-study": 2}
    # dry run lists, writes nothing
    capsys.readouterr()
    assert main(["run", str(cohort["yaml"]), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "would-run" in printed and "1 would run, 3 already done" in printed
    assert "broken-study" not in printed  # ids are hashed unless --show-ids


def test_cli_config_error_is_one_line_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninputs:\n  paths: [a]\noutput:\n  thresold: 0.3\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"{bad}:5: unknown key 'thresold' in output" in err


def _digest(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name in DETERMINISTIC:
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _done_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return int(con.execute("SELECT count(*) FROM studies WHERE state='done'").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def _run_until_a_study_is_done(cohort: Path, db: Path) -> subprocess.Popen:
    """``medzsad run COHORT`` in a child process, returned once its ledger ``db`` has a done study."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "medzsad", "run", str(cohort), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _done_count(db) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "finished before it could be stopped: " + proc.stderr.read().decode()[-500:]
    return proc


def test_sigkill_midway_then_resume_equals_uninterrupted_run(tmp_path):
    info = make_cohort(tmp_path / "data", n_nifti=5, corrupt=False, shape=(40, 36, 24))
    ref_yaml = write_cohort_yaml(tmp_path / "ref.yaml", info["manifest"], tmp_path / "ref", name="ref")
    kill_yaml = write_cohort_yaml(tmp_path / "kill.yaml", info["manifest"], tmp_path / "kill", name="kill")
    assert main(["run", str(ref_yaml), "--quiet"]) == 0
    db = tmp_path / "kill" / "ledger.sqlite"
    proc = _run_until_a_study_is_done(kill_yaml, db)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _done_count(db)
    assert 1 <= killed_at < 6
    assert main(["run", str(kill_yaml), "--quiet"]) == 0
    studies_dir = tmp_path / "kill" / "studies"
    assert not [p for p in studies_dir.iterdir() if ".partial-" in p.name]
    assert not list((tmp_path / "kill").rglob("*.tmp-*"))
    assert _digest(studies_dir) == _digest(tmp_path / "ref" / "studies")
    assert len(_digest(studies_dir)) == 6 * len(DETERMINISTIC)
    ref_table = pd.read_csv(tmp_path / "ref" / "studies.csv")
    kill_table = pd.read_csv(tmp_path / "kill" / "studies.csv")
    cols = ["study_id", "score", "rank", "lesion_count", "status"]
    pd.testing.assert_frame_equal(ref_table[cols], kill_table[cols])
    with sqlite3.connect(db) as con:
        attempts = [a for (a,) in con.execute("SELECT attempts FROM studies")]
    assert sum(a == 1 for a in attempts) >= killed_at  # finished studies were not recomputed


def test_ctrl_c_midway_leaves_tables_of_what_finished(tmp_path):
    """Ctrl-C: exit 130, and studies.csv / errors.csv list what finished; a rerun completes."""
    info = make_cohort(tmp_path / "data", n_nifti=5, shape=(40, 36, 24))
    cfg = write_cohort_yaml(tmp_path / "c.yaml", info["manifest"], tmp_path / "out")
    db = tmp_path / "out" / "ledger.sqlite"
    proc = _run_until_a_study_is_done(cfg, db)
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    with sqlite3.connect(db) as con:
        states = dict(con.execute("SELECT study_id, state FROM studies").fetchall())
    table = pd.read_csv(tmp_path / "out" / "studies.csv").set_index("study_id")
    assert len(table) == 7  # every study of the cohort, finished or not
    finished = {sid for sid, st in states.items() if st in ("done", "failed")}
    assert 1 <= len(finished) < 7
    for sid, row in table.iterrows():
        assert row["status"] == (states[sid] if sid in finished else "pending"), (sid, row["status"])
    assert set(table.index[table["status"] == "done"]) == {s for s in finished if states[s] == "done"}
    assert (tmp_path / "out" / "errors.csv").is_file()
    assert not list((tmp_path / "out").rglob("*.tmp-*"))
    assert main(["run", str(cfg), "--quiet"]) == EXIT_FAILED_STUDIES  # the broken study
    table = pd.read_csv(tmp_path / "out" / "studies.csv")
    assert sorted(table["status"]) == ["done"] * 6 + ["failed"]


def test_show_ids_puts_real_ids_in_progress_lines(tmp_path, capsys):
    from medzsad.ids import hashed_id

    info = make_cohort(tmp_path / "data", n_nifti=1)
    cfg = write_cohort_yaml(tmp_path / "c.yaml", info["manifest"], tmp_path / "out")
    assert main(["run", str(cfg), "--show-ids"]) == EXIT_FAILED_STUDIES
    err = capsys.readouterr().err
    assert "] broken-study failed" in err and hashed_id("broken-study") not in err
    assert "] nifti-0 done" in err


def test_continue_on_error_false_stops_after_the_first_failure(tmp_path):
    info = make_cohort(tmp_path / "data", n_nifti=1)
    manifest = info["manifest"]
    header, *rows = manifest.read_text().splitlines()
    manifest.write_text("\n".join([header, *reversed(rows)]) + "\n")  # the corrupt study first
    cfg = write_cohort_yaml(
        tmp_path / "c.yaml", manifest, tmp_path / "out", extra="executor: {continue_on_error: false}\n"
    )
    assert main(["run", str(cfg), "--quiet"]) == EXIT_FAILED_STUDIES
    assert not list((tmp_path / "out" / "studies").glob("*/heatmap.nii.gz"))
    # with the default (continue), a rerun completes the others and leaves only the corrupt one failed
    cfg2 = write_cohort_yaml(tmp_path / "c.yaml", manifest, tmp_path / "out")
    assert main(["run", str(cfg2), "--quiet"]) == EXIT_FAILED_STUDIES
    assert len(list((tmp_path / "out" / "studies").glob("*/heatmap.nii.gz"))) == len(rows) - 1
