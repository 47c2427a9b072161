"""Progress a user can follow: the bar moves slice by slice; log lines carry elapsed time and ETA."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medzsad.cli import main
from medzsad.cohort.launch import run_cohort
from medzsad.cohort.options import RunOptions


def test_the_bar_shows_slices_within_a_study(formats_cohort: Path, tmp_path: Path, capsys) -> None:
    run_cohort(formats_cohort, RunOptions(progress="bar", out_dir=str(tmp_path / "bar")))
    err = capsys.readouterr().err
    done = [int(m.group(1)) for m in re.finditer(r"(\d+)/(\d+) slices", err)]
    assert done and max(done) > 0  # the bar named how many of the study's slices were scored
    assert re.search(r"0\.\d/1 studies \[", err)  # and stood between 0 and 1 study while scoring
    assert not re.search(r"\d\.\d\d+/1", err)  # one decimal (a walk-through saw 0.10140845070422536/1)


def test_lines_without_a_terminal_carry_elapsed_and_eta(formats_cohort: Path, tmp_path: Path, capsys) -> None:
    assert main(["run", str(formats_cohort), "--out", str(tmp_path / "lines")]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("[1/1]"))
    assert re.search(r"elapsed \d+:\d\d:\d\d ETA 0:00:00$", line), line


def test_profile_prints_its_studies_without_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tiny_model import TINY_MODEL

    assert main(["demo-data", str(tmp_path / "d"), "--resolution", "4", "--normals", "4"]) == 0
    normals = tmp_path / "normals.yaml"
    normals.write_text(
        f"name: n\ninputs: {{manifest: {tmp_path / 'd' / 'normals.csv'}}}\n{TINY_MODEL}"
        f"output: {{dir: {tmp_path / 'run'}, outputs: [provenance]}}\nprofile: {{alpha: 0.25}}\n"
    )
    capsys.readouterr()
    assert main(["profile", str(normals)]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("[")]
    assert [x.split("]")[0] for x in lines] == ["[1/4", "[2/4", "[3/4", "[4/4"]
