"""Every failure of the command line: its exit code and one line on stderr, no traceback (issue 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medzsad import api
from medzsad.cli import EXIT_CONFIG, EXIT_ERROR, EXIT_INPUT, EXIT_OUTPUT, main


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("medzsad: ")
    return lines[0]


def test_unwritable_output_dir_exits_6(formats_cohort: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["run", str(formats_cohort), "--out", str(blocker / "out")]) == EXIT_OUTPUT
    line = _one_line(capsys.readouterr().err)
    assert str(blocker / "out") in line and "--out" in line


def test_scan_given_as_cohort_file_is_explained(scan: Path, capsys) -> None:
    assert main(["run", str(scan)]) == EXIT_CONFIG
    line = _one_line(capsys.readouterr().err)
    assert "scan" in line and f"medzsad run -i {scan}" in line


def test_scan_without_a_scan_suffix_is_explained(scan: Path, tmp_path: Path, capsys) -> None:
    odd = tmp_path / "scan.bin"
    odd.write_bytes(scan.read_bytes())  # gzip bytes: not UTF-8
    assert main(["run", str(odd)]) == EXIT_CONFIG
    assert "medzsad run -i" in _one_line(capsys.readouterr().err)


def test_folder_given_as_cohort_file_is_explained(scan: Path, capsys) -> None:
    assert main(["run", str(scan.parent)]) == EXIT_CONFIG
    assert "is a folder" in _one_line(capsys.readouterr().err)


def test_folder_with_no_study_names_folder_skipped_files_and_inspect(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("x")
    (folder / "sub" / "table.json").write_text("{}")
    cohort = tmp_path / "c.yaml"
    cohort.write_text(f"name: e\ninputs: {{paths: [{folder}]}}\n")
    assert main(["run", str(cohort)]) == EXIT_INPUT
    line = _one_line(capsys.readouterr().err)
    assert str(folder) in line
    assert "2 file(s) skipped" in line and "not a scan file" in line
    assert f"medzsad inspect {folder}" in line


def test_unknown_key_suggests_the_close_one(scan: Path, tmp_path: Path, capsys) -> None:
    cohort = tmp_path / "c.yaml"
    cohort.write_text(f"name: e\ninputs: {{paths: [{scan}]}}\nmodel:\n  devcie: cpu\n")
    assert main(["run", str(cohort)]) == EXIT_CONFIG
    line = _one_line(capsys.readouterr().err)
    assert f"{cohort}:4" in line and "did you mean 'device'?" in line


def test_unexpected_exception_is_one_line_and_traceback_only_with_vv(
    formats_cohort: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(api, "run_cohort", boom, raising=False)
    assert main(["run", str(formats_cohort)]) == EXIT_ERROR
    line = _one_line(capsys.readouterr().err)
    assert "RuntimeError: something | broke" in line and "-vv" in line
    assert main(["run", str(formats_cohort), "-vv"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("medzsad: unexpected error")


def test_console_script_scan_as_cohort_in_a_fresh_process(scan: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "medzsad", "run", str(scan)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == EXIT_CONFIG
    assert "medzsad run -i" in _one_line(proc.stderr)
