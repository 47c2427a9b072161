"""Issue 16 faults: read-only output folder, empty/garbage ledger, disk full (typed errors, exit 6)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from medzsad.cli import main
from medzsad.cohort.ledger import Ledger
from medzsad.errors import LedgerError, OutputError

from .conftest import make_cohort, write_cohort_yaml

EXIT_OUTPUT = 6


@pytest.fixture
def cohort(tmp_path: Path) -> dict[str, Path]:
    info = make_cohort(tmp_path / "data", n_nifti=1, corrupt=False)
    out = tmp_path / "out"
    return {"cfg": write_cohort_yaml(tmp_path / "c.yaml", info["manifest"], out), "out": out}


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_read_only_output_folder_is_exit_6(
    cohort: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = Path.write_bytes

    def read_only(self: Path, data: bytes) -> int:
        if self.name.startswith(".medzsad-write-test"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    assert main(["run", str(cohort["cfg"]), "--quiet"]) == EXIT_OUTPUT
    line = _one_line_error(capsys)
    assert "output folder is not writable (Read-only file system)" in line and str(cohort["out"]) in line


def test_empty_ledger_next_to_study_folders_is_refused(
    cohort: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = cohort["out"]
    assert main(["run", str(cohort["cfg"]), "--quiet"]) == 0
    (out / "ledger.sqlite").write_bytes(b"")
    for extra in ("-wal", "-shm"):
        (out / f"ledger.sqlite{extra}").unlink(missing_ok=True)
    capsys.readouterr()
    assert main(["run", str(cohort["cfg"]), "--quiet"]) == EXIT_OUTPUT
    line = _one_line_error(capsys)
    assert "is empty (0 bytes)" in line and "2 study folder(s)" in line and "move" in line


def test_empty_ledger_without_study_folders_starts_fresh(tmp_path: Path) -> None:
    (tmp_path / "ledger.sqlite").write_bytes(b"")
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert ledger.rows() == []


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"this is not a database at all" * 100, "not a readable medzsad run ledger"),
        ("sqlite-other", "not a medzsad run ledger"),
        ("bad-row", "row of study 'x' holds values medzsad never writes"),
    ],
)
def test_garbage_ledger_is_a_typed_error(tmp_path: Path, content: bytes | str, match: str) -> None:
    path = tmp_path / "ledger.sqlite"
    if content == "sqlite-other":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE studies (id INTEGER, name TEXT)")
    elif content == "bad-row":
        with Ledger(path) as ledger:
            ledger.mark_running("x", "x", "i", "c")
        with sqlite3.connect(path) as db:
            db.execute("UPDATE studies SET state = 'exploded'")
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    with pytest.raises(LedgerError, match=match) as e:
        with Ledger(path) as ledger:
            ledger.rows()
    assert str(path) in str(e.value)
    assert isinstance(e.value, OutputError)  # the CLI maps it to exit 6


def test_disk_full_message_says_rerun(tmp_path: Path) -> None:
    class Full:
        def __enter__(self) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        def __exit__(self, *a: object) -> None:
            return None

    ledger = Ledger(tmp_path / "ledger.sqlite")
    real, ledger._db = ledger._db, Full()  # type: ignore[assignment]
    with pytest.raises(OutputError, match="free space and rerun the same command") as e:
        ledger.mark_done("x", {})
    assert "delete" not in str(e.value)
    ledger._db = real
    ledger.close()


def test_rerun_after_disk_full_completes(cohort: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import medzsad.study.finish as job

    real = job.write_study_files

    def full(*a: object, **k: object) -> object:
        raise OutputError("cannot write heatmap.nii.gz: No space left on device")

    # the patch reaches this process only: write in it (workers: 0), not in writer processes
    cfg = cohort["cfg"]
    cfg.write_text(cfg.read_text() + "executor: {workers: 0}\n")
    monkeypatch.setattr(job, "write_study_files", full)
    assert main(["run", str(cohort["cfg"]), "--quiet"]) == 3
    monkeypatch.setattr(job, "write_study_files", real)
    assert main(["run", str(cohort["cfg"]), "--quiet"]) == 0
    studies = pd.read_csv(cohort["out"] / "studies.csv")
    assert (studies["status"] == "done").all()
    assert not [p for p in (cohort["out"] / "studies").iterdir() if ".partial-" in p.name]
