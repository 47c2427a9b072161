"""What a push ends with: sent, some studies not sent (exit 3), nothing sent (exit 6), refused (exit 7).

A refusal (wrong credentials, an unknown AE title) is never retried and stops the push: one bad
login, not one per study (an account lockout otherwise).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medzsad import api
from medzsad.cli import EXIT_FAILED_STUDIES, EXIT_OUTPUT, EXIT_PACS_REFUSED, main
from medzsad.cohort.ledger import Ledger
from medzsad.cohort.push import push_run
from medzsad.config.pacs import PushConfig
from medzsad.errors import PacsRefusedError, PacsSendError, PacsSendRefusedError
from medzsad.report.review_outputs import SEG_FILE

DEST = PushConfig(dicomweb={"url": "http://unused"}, retries=2, backoff_s=0.0)


def _run_folder(root: Path, n: int) -> Path:
    """A run folder with ``n`` done studies, each with a (stand-in) DICOM SEG to send."""
    root.mkdir(parents=True)
    with Ledger(root / "ledger.sqlite") as ledger:
        for i in range(n):
            sid = f"s{i}"
            ledger.mark_running(sid, sid, "i", "c")
            seg = root / "studies" / sid / SEG_FILE
            seg.parent.mkdir(parents=True)
            ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
            ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{100 + i}"
            ds.save_as(seg)
            ledger.mark_done(sid, {"score": 0.5})
    return root


class _Refusing:
    endpoint = "http://127.0.0.1:8042/dicom-web"

    def __init__(self) -> None:
        self.calls = 0

    def store(self, files) -> None:
        self.calls += 1
        raise PacsSendRefusedError(
            f"{self.endpoint}: HTTP 401 Unauthorized: the server refused us; check the credentials",
            endpoint=self.endpoint,
            side="credentials",
        )


class _FailsFor:
    endpoint = "fake://pacs"

    def __init__(self, bad: set[str]) -> None:
        self.bad = bad

    def store(self, files) -> None:
        if any(Path(f).parts[-3] in self.bad for f in files):
            raise PacsSendError("fake://pacs: HTTP 503 Service Unavailable", endpoint=self.endpoint)


def test_a_refusal_is_tried_once_and_stops_the_push(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run", 3)
    client = _Refusing()
    with pytest.raises(PacsRefusedError, match="credentials"):
        push_run(run, DEST, client=client)  # type: ignore[arg-type]
    assert client.calls == 1  # never retried, no other study tried
    errors = pd.read_csv(run / "errors.csv", keep_default_na=False)
    rows = errors[errors["stage"] == "push"].sort_values("study_id")
    assert list(rows["study_id"]) == ["s0", "s1", "s2"]
    assert "HTTP 401" in rows["message"].iloc[0]
    assert all(m.startswith("not sent: ") and "401" in m for m in rows["message"].iloc[1:])


def test_some_studies_not_sent_is_a_report_and_nothing_sent_is_an_error(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run", 3)
    report = push_run(run, DEST, client=_FailsFor({"s1"}))  # type: ignore[arg-type]
    assert (report.n_sent, [f.study_id for f in report.failures]) == (2, ["s1"])
    other = _run_folder(tmp_path / "run2", 2)
    with pytest.raises(PacsSendError, match="nothing could be sent"):
        push_run(other, DEST, client=_FailsFor({"s0", "s1"}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (PacsSendRefusedError("x: refused", side="calling AE"), EXIT_PACS_REFUSED),
        (PacsSendError("x: nothing could be sent"), EXIT_OUTPUT),
    ],
)
def test_push_exit_codes(tmp_path: Path, monkeypatch, raised: Exception, code: int, capsys) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(api, "push_run", fail, raising=False)
    assert main(["push", str(tmp_path), "--dicomweb", "http://127.0.0.1:9/dicom-web"]) == code
    assert capsys.readouterr().err.startswith("medzsad: error: x: ")


def test_a_partial_push_exits_3(tmp_path: Path, monkeypatch, capsys) -> None:
    run = _run_folder(tmp_path / "run", 2)
    real = push_run

    def with_fake_client(run_dir, destination, **kwargs):  # the CLI's call, one destination failing
        return real(run_dir, destination, client=_FailsFor({"s0"}))

    monkeypatch.setattr(api, "push_run", with_fake_client, raising=False)
    assert main(["push", str(run), "--dicomweb", "http://127.0.0.1:9/dicom-web"]) == EXIT_FAILED_STUDIES
    assert "1 study failed" in capsys.readouterr().out
    shutil.rmtree(run)
