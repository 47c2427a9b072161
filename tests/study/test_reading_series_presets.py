"""The preset is chosen from the headers first, and its ``series:`` rules choose the series."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medzsad.config import PipelineConfig
from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series
from medzsad.study.reading import read_study
from medzsad.study.types import StudyInput


def _series(root: Path, name: str, modality: str, n: int, step_mm: float, body_part: str = "") -> None:
    data = np.random.default_rng(n).integers(100, 900, size=(12, 10, n)).astype(np.float32)
    a_lps = np.diag([0.8, 0.8, step_mm, 1.0])
    spec = SeriesSpec(
        modality, uid_seed=name, study_seed="one-study", series_description=name, body_part=body_part
    )
    write_dicom_series(data, a_lps, root / name, spec)


def test_preset_series_rules_change_the_chosen_series(tmp_path: Path) -> None:
    # io's default rule prefers the thinnest slices ("thin", 6 x 1 mm); mr-brain.yaml says
    # prefer: most_slices, so the preset must pick "many" (9 x 3 mm).
    _series(tmp_path / "study", "thin", "MR", 6, 1.0)
    _series(tmp_path / "study", "many", "MR", 9, 3.0)
    study = StudyInput("s1", str(tmp_path / "study"))
    auto = read_study(study, PipelineConfig())
    assert auto.preset.name == "mr-brain" and auto.preset.series.prefer == "most_slices"
    assert (auto.series.description, auto.series.preset, auto.series.candidates) == ("many", "mr-brain", 2)
    assert auto.volume.shape_ijk == (12, 10, 9)
    assert "most slices" in auto.series.why
    # the cohort's own series override still wins over the preset's rule
    override = read_study(study, PipelineConfig(series={"prefer": "thinnest"}))
    assert (override.series.description, override.volume.shape_ijk[2]) == ("thin", 6)
    # an explicit preset's rules apply too: xray-2d prefers the lowest series number, then the UID
    assert read_study(study, PipelineConfig(preset="xray-2d")).preset.series.prefer == "first"


def test_body_part_examined_chooses_the_ct_preset_and_its_rules(tmp_path: Path) -> None:
    # a 3-slice series passes io's defaults (min_slices 1) but not ct-chest's min_slices: 5
    _series(tmp_path / "study", "short", "CT", 3, 0.5, body_part="CHEST")
    _series(tmp_path / "study", "long", "CT", 6, 2.0, body_part="CHEST")
    read = read_study(StudyInput("s2", str(tmp_path / "study")), PipelineConfig())
    assert (read.series.preset, read.series.body_part, read.series.description) == (
        "ct-chest",
        "CHEST",
        "long",
    )
    assert json.loads(json.dumps(read.series.to_dict()))["preset"] == "ct-chest"
