from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medzsad.cohort.ledger import Ledger, StudyState
from medzsad.cohort.run_lock import run_lock
from medzsad.errors import OutputError
from medzsad.ids import hashed_id, safe_study_id, unique_safe_ids


@given(st.text(min_size=1, max_size=200))
def test_safe_ids_are_safe(sid):
    s = safe_study_id(sid)
    assert 0 < len(s) <= 64
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in s)
    assert not s.startswith(".") and ".." not in s


def test_safe_ids_examples_and_collisions():
    assert safe_study_id("CT_0001") == "CT_0001"
    assert safe_study_id("../etc/passwd").startswith("__etc_passwd-")
    assert safe_study_id("a/b") != safe_study_id("a_b")
    ids = unique_safe_ids(["Case1", "case1", "x"])
    assert ids["x"] == "x" and ids["Case1"].lower() != ids["case1"].lower()
    with pytest.raises(ValueError, match="duplicate"):
        unique_safe_ids(["a", "a"])
    assert hashed_id("PATIENT^NAME") == hashed_id("PATIENT^NAME") and "PATIENT" not in hashed_id(
        "PATIENT^NAME"
    )


def test_ledger_states_persist(tmp_path):
    db = tmp_path / "ledger.sqlite"
    with Ledger(db) as led:
        led.mark_running("s1", "s1", "ih", "ch")
        led.mark_done("s1", {"score": 0.5})
        led.mark_running("s2", "s2", "ih2", "ch")
        led.mark_failed("s2", "bad file", {"stage": "load"})
        led.mark_running("s3", "s3", "ih3", "ch")
        led.set_meta("cohort", "x")
    with Ledger(db) as led:
        rows = {r.study_id: r for r in led.rows()}
        assert rows["s1"].state is StudyState.DONE and rows["s1"].outputs == {"score": 0.5}
        assert rows["s2"].state is StudyState.FAILED and rows["s2"].error == "bad file"
        assert rows["s3"].state is StudyState.RUNNING  # a killed run leaves it running -> redone
        led.mark_running("s2", "s2", "ih2", "ch")
        assert led.get("s2").attempts == 2 and led.get("s2").error == ""
        assert led.get_meta("cohort") == "x" and led.get("nope") is None


def test_run_lock_is_exclusive(tmp_path):
    with run_lock(tmp_path):
        pid = os.fork()
        if pid == 0:  # child: must not get the lock
            try:
                with run_lock(tmp_path):
                    os._exit(1)
            except OutputError:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    with run_lock(tmp_path):  # released
        pass


def test_studies_of_a_pacs_export_are_named_after_their_subfolders(tmp_path: Path) -> None:
    """A PACS export (one subfolder per study) gives subfolder names, not pseudonyms of the UIDs."""
    import numpy as np

    from medzsad.cohort.inputs import collect_studies
    from medzsad.config import parse_cohort
    from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series

    export = tmp_path / "export"
    for patient, study in (("patient-a", "ct-2024"), ("patient-b", "ct-2025")):
        data = np.random.default_rng(0).uniform(0, 100, (8, 8, 3)).astype(np.float32)
        spec = SeriesSpec("CT", study, patient + study)
        write_dicom_series(data, np.eye(4), export / patient / study, spec)
    cfg = parse_cohort(f"name: e\ninputs: {{paths: [{export}]}}\n")
    assert sorted(s.study_id for s in collect_studies(cfg)) == ["patient-a-ct-2024", "patient-b-ct-2025"]
    # inspect names them as the run will (its output folders), the UID beside
    from medzsad.io.inspect import inspect_path

    report = inspect_path(export, load=False)
    assert sorted(s.run_id for s in report.studies) == ["patient-a-ct-2024", "patient-b-ct-2025"]
    assert "study patient-a-ct-2024 (StudyInstanceUID " in report.to_text()
