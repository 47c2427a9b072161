"""PACS inputs and pushes inside a cohort run, with a PACS that is down or refuses.

A cohort with a local DICOM study and a DICOMweb study on a closed port: the local study is done,
the PACS study fails with a PacsError naming study and endpoint (errors.csv), the run goes on.
A push whose destination refuses is retried with backoff, ends in errors.csv (stage push) and
keeps the local files; once the destination works, only the unsent objects go, once.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from tiny_model import TINY_MODEL

from medzsad.cohort.launch import run_cohort
from medzsad.cohort.push import push_run
from medzsad.cohort.push_records import SentRecords
from medzsad.config import load_cohort
from medzsad.config.pacs import PushConfig
from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series
from medzsad.errors import PacsSendError
from medzsad.ids import pseudonym_study_id
from medzsad.study.hashing import study_config_hash

MISSING = "1.2.826.0.1.3680043.8.498.1"
SECRET = "tok-3f9a1c-not-to-be-written"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pacs-cohort")
    shape = (40, 40, 6)
    rng = np.random.default_rng(0)
    data = 500 + 100 * rng.random(shape)
    data[20:24, 20:24, 2:4] = 2000
    affine = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]])
    write_dicom_series(data, affine, root / "local", SeriesSpec("CT", "local", "local"))
    url = f"http://127.0.0.1:{_closed_port()}/dicom-web"
    cfg = root / "cohort.yaml"
    cfg.write_text(
        f"""name: pacs-down
inputs:
  paths: [{root / "local"}]
  dicomweb:
    url: "{url}"
    studies: ["{MISSING}"]
    retries: 0
    timeout_s: 2
    auth: {{kind: bearer, token_env: MEDZSAD_TEST_PACS_TOKEN}}
pipeline: {{skip_empty_slices: false}}
{TINY_MODEL}output:
  dir: {root / "out"}
  formats: [dicom-sr]
  threshold: {{method: percentile, value: 97.0, min_lesion_ml: 0.0}}
  push:
    dimse: {{host: 127.0.0.1, port: {_closed_port()}, ae_title: DOWN, timeout_s: 2}}
    retries: 1
    backoff_s: 0
"""
    )
    os.environ["MEDZSAD_TEST_PACS_TOKEN"] = SECRET
    try:
        summary = run_cohort(cfg)
    finally:
        del os.environ["MEDZSAD_TEST_PACS_TOKEN"]
    assert (summary.n_done, summary.n_failed) == (1, 1)
    return root / "out"


def test_the_token_is_never_written(run_dir: Path) -> None:
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "provenance.json" for p in files) and any(
        p.name.startswith("ledger.sqlite") for p in files
    )
    for p in files:
        assert SECRET.encode() not in p.read_bytes(), p.name
    prov = next(p for p in files if p.name == "provenance.json").read_text()
    assert "MEDZSAD_TEST_PACS_TOKEN" in prov  # the variable's name is recorded, not its value


def test_pacs_down_fails_its_study_only_with_a_typed_error(run_dir: Path) -> None:
    errors = pd.read_csv(run_dir / "errors.csv", keep_default_na=False)
    (row,) = errors[errors["stage"] != "push"].to_dict("records")
    # named by a pseudonym of its StudyInstanceUID (the UID is an identifier: never a study id)
    assert row["study_id"] == pseudonym_study_id("dicomweb", MISSING) and row["error_type"] == "PacsError"
    assert MISSING in row["message"] and "cannot connect" in row["message"] and "/dicom-web" in row["message"]
    studies = pd.read_csv(run_dir / "studies.csv", keep_default_na=False)
    assert sorted(studies["status"]) == ["done", "failed"]


class _Flaky:
    """A destination that refuses ``fail`` times, then stores (remembering what it got)."""

    endpoint = "fake://pacs"

    def __init__(self, fail: int) -> None:
        self.fail, self.stored = fail, []

    def store(self, files) -> None:
        if self.fail:
            self.fail -= 1
            raise PacsSendError("fake://pacs: HTTP 503 Service Unavailable", endpoint=self.endpoint)
        self.stored += [Path(f).name for f in files]


def test_push_destination_down_during_the_run_is_one_errors_csv_row(run_dir: Path) -> None:
    errors = pd.read_csv(run_dir / "errors.csv", keep_default_na=False)
    (row,) = errors[errors["stage"] == "push"].to_dict("records")
    assert row["error_type"] == "PacsSendError" and row["source"].startswith("DOWN@127.0.0.1:")
    assert "cannot be reached" in row["message"]
    with SentRecords(run_dir / "ledger.sqlite") as records:
        (failure,) = records.failures()
        assert failure.attempts == 2 and records.n_sent() == 0  # tried as the study finished, not again


def test_failed_push_is_retried_recorded_in_errors_csv_and_keeps_files(run_dir: Path) -> None:
    dest = PushConfig(dicomweb={"url": "http://unused"}, retries=1, backoff_s=0.0)
    files = sorted(p for p in (run_dir / "studies").rglob("*.dcm"))
    assert [f.name for f in files] == ["anomaly_seg.dcm", "anomaly_sr.dcm"]
    before = [f.read_bytes() for f in files]

    down = _Flaky(fail=5)
    with pytest.raises(PacsSendError, match="nothing could be sent"):  # every study failed: exit 6
        push_run(run_dir, dest, client=down)  # type: ignore[arg-type]
    assert down.fail == 3  # 1 + 1 retry
    errors = pd.read_csv(run_dir / "errors.csv", keep_default_na=False)
    push_rows = errors[(errors["stage"] == "push") & (errors["source"] == "fake://pacs")]
    assert list(push_rows["error_type"]) == ["PacsSendError"] and "HTTP 503" in push_rows["message"].iloc[0]
    assert (errors["stage"] != "push").sum() == 1  # the study error is still there
    assert [f.read_bytes() for f in files] == before  # local files untouched

    up = _Flaky(fail=1)
    report = push_run(run_dir, dest, client=up)  # type: ignore[arg-type]
    assert (
        report.ok and report.n_sent == 2 and up.stored == ["anomaly_seg.dcm", "anomaly_sr.dcm"]
    )  # SEG first
    errors = pd.read_csv(run_dir / "errors.csv", keep_default_na=False)
    assert list(errors.loc[errors["stage"] == "push", "source"]) == [
        row["source"] for row in _down_rows(errors)
    ]
    again = _Flaky(fail=0)
    report = push_run(run_dir, dest, client=again)  # type: ignore[arg-type]
    assert (report.n_sent, report.n_already, again.stored) == (0, 2, [])


def test_sr_states_score_operating_point_lesions_and_model(run_dir: Path) -> None:
    (sr_path,) = (run_dir / "studies").rglob("anomaly_sr.dcm")
    sr = pydicom.dcmread(sr_path)
    seg = pydicom.dcmread(sr_path.with_name("anomaly_seg.dcm"))
    text = " ".join(_texts(sr))
    studies = pd.read_csv(run_dir / "studies.csv", keep_default_na=False)
    score = float(studies.loc[studies["status"] == "done", "score"].iloc[0])
    assert (
        "operating point: heat >= " in text
        and "operating point from: heat >= the study's 97th percentile (uncalibrated" in text
    )
    assert "model: " in text and "weights: " in text
    assert sr.SeriesDescription == "SMOKE RUN random weights - medzsad anomaly report"  # tiny random model
    assert "SMOKE RUN: random weights, scores are meaningless" in text
    values = [float(v) for v in _numbers(sr, "Anomaly study score")]
    assert values == [pytest.approx(score, abs=1e-6)]
    lesions = pd.read_csv(sr_path.parent.parent / "lesions.csv")
    assert sorted(_numbers(sr, "Volume")) == pytest.approx(sorted(lesions["volume_ml"]), abs=1e-5)
    assert len(lesions) >= 1
    segments = _items(sr, "ReferencedSegmentNumber")
    assert len(segments) == len(lesions)  # each lesion references the SEG's anomaly segment
    assert {(s.ReferencedSOPInstanceUID, s.ReferencedSegmentNumber) for s in segments} == {
        (seg.SOPInstanceUID, 1)
    }


def _down_rows(errors: pd.DataFrame) -> list[dict]:
    return errors[(errors["stage"] == "push") & errors["source"].str.startswith("DOWN@")].to_dict("records")


def _items(ds: pydicom.Dataset, keyword: str) -> list[pydicom.Dataset]:
    out = [ds] if keyword in ds else []
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                out += _items(item, keyword)
    return out


def _texts(ds: pydicom.Dataset) -> list[str]:
    return [str(i.TextValue) for i in _items(ds, "TextValue")]


def _numbers(ds: pydicom.Dataset, meaning: str) -> list[float]:
    out = []
    for item in getattr(ds, "ContentSequence", []):
        name = item.get("ConceptNameCodeSequence")
        if item.get("ValueType") == "NUM" and name and name[0].CodeMeaning == meaning:
            out.append(float(item.MeasuredValueSequence[0].NumericValue))
        out += _numbers(item, meaning)
    return out


def test_push_settings_do_not_change_the_study_config_hash(tmp_path: Path) -> None:
    base = "name: h\ninputs: {paths: [x]}\n"
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(base)
    b.write_text(base + "output: {push: {dimse: {host: pacs, port: 104, ae_title: PACS}}}\n")
    assert study_config_hash(load_cohort(a)) == study_config_hash(load_cohort(b))


def test_sr_states_the_site_profile_p_value_and_flag(tmp_path: Path) -> None:
    """With output.flag, the SR holds the study's p-value and flag, equal to studies.csv's."""
    from medzsad.calibration.hashes import model_hash, pipeline_hash
    from medzsad.calibration.profile_io import CalibrationStudy, Profile, Stratum, write_profile

    shape = (40, 40, 6)
    data = 500 + 100 * np.random.default_rng(1).random(shape)
    affine = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]])
    write_dicom_series(data, affine, tmp_path / "ct", SeriesSpec("CT", "flagged", "flagged"))
    cfg = tmp_path / "cohort.yaml"
    cfg.write_text(
        f"""name: flagged
inputs: {{paths: [{tmp_path / "ct"}]}}
pipeline: {{skip_empty_slices: false}}
{TINY_MODEL}output:
  dir: {tmp_path / "out"}
  formats: [dicom-sr]
  flag: {{profile: {tmp_path / "profile"}, alpha: 0.5, control: fpr}}
"""
    )
    normals = tuple(CalibrationStudy(f"n{i}", i / 20, 0.1) for i in range(20))  # scores 0 .. 0.95
    write_profile(
        tmp_path / "profile",
        Profile(
            name="site",
            model_hash=model_hash(load_cohort(cfg)),
            pipeline_hash=pipeline_hash(load_cohort(cfg)),
            strata_fields=(),
            min_lesion_ml=0.1,
            alpha_min=0.1,
            strata={"all": Stratum("all", {}, normals)},
            created="2026-11-30T08:00:00+00:00",
            medzsad_version="0.1.0",
        ),
    )
    summary = run_cohort(cfg)
    assert summary.n_done == 1
    row = pd.read_csv(tmp_path / "out" / "studies.csv").iloc[0]
    (sr_path,) = (tmp_path / "out" / "studies").rglob("anomaly_sr.dcm")
    sr = pydicom.dcmread(sr_path)
    assert _numbers(sr, "Anomaly score p-value") == [pytest.approx(float(row["p_value"]), abs=1e-9)]
    flags = [i.ConceptCodeSequence[0].CodeMeaning for i in _items(sr, "ConceptCodeSequence")
             if i.ConceptNameCodeSequence[0].CodeMeaning == "Anomaly flag"]  # fmt: skip
    assert flags == ["Yes" if bool(row["flagged"]) else "No"]
    assert "flag rule: flag at alpha 0.5, false-positive rate (profile site, n=20 normals)" in _texts(sr)
