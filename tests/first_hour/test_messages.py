"""One-line messages of the first hour name what the user typed and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from medzsad.cohort.inputs import collect_studies
from medzsad.config import load_cohort
from medzsad.errors import ConfigError, InputError, OutputError
from medzsad.report.slicer_bundle import read_bundle


def test_a_missing_demo_manifest_says_how_to_write_the_demo_data(tmp_path: Path) -> None:
    cohorts = tmp_path / "cohorts"
    cohorts.mkdir()
    (cohorts / "demo.yaml").write_text("name: demo\ninputs:\n  manifest: ../demo-data/manifest.csv\n")
    with pytest.raises(ConfigError) as e:
        collect_studies(load_cohort(cohorts / "demo.yaml"))
    expected = tmp_path / "demo-data" / "manifest.csv"  # '..' collapsed
    assert str(e.value).startswith(f"{expected}: the manifest (inputs.manifest) does not exist")
    assert f"'medzsad demo-data {tmp_path / 'demo-data'}'" in str(e.value)


def test_an_empty_input_folder_names_the_command_lines_input(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "c.yaml").write_text(f"name: c\ninputs: {{paths: [{tmp_path / 'empty'}]}}\n")
    with pytest.raises(InputError, match=r"holds no files; check the input path \(-i, or inputs.paths\)"):
        collect_studies(load_cohort(tmp_path / "c.yaml"))


def test_slicer_on_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="nope: no such study output folder"):
        read_bundle(tmp_path / "nope")
