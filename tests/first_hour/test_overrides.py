"""Command-line overrides work on a cohort that uses ``output.formats`` (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medzsad.cli import main
from medzsad.config import load_cohort
from medzsad.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_overrides_on_a_formats_cohort_round_trip(formats_cohort: Path, tmp_path: Path) -> None:
    config = load_cohort(formats_cohort)
    assert config.output.formats is None  # formats is the short spelling: turned into outputs once
    changed = config.with_overrides(**{"model.device": "cpu", "model.batch_size": 3, "output.dir": "x"})
    assert changed.output.outputs == config.output.outputs
    assert changed.model.batch_size == 3


def test_conflicting_formats_and_outputs_are_still_rejected(tmp_path: Path) -> None:
    cohort = tmp_path / "c.yaml"
    output = "output: {formats: [nifti, png], outputs: [overlay]}\n"
    cohort.write_text("name: c\ninputs: {paths: [a.nii]}\n" + output)
    with pytest.raises(ConfigError, match="not both"):
        load_cohort(cohort)


def test_formats_and_the_equal_outputs_give_the_same_study_hash(tmp_path: Path) -> None:
    from medzsad.config import parse_cohort
    from medzsad.study.hashing import study_config_hash

    base = "name: c\ninputs: {paths: [a.nii]}\n"
    short = parse_cohort(base + "output: {formats: [nifti, png]}\n")
    long = parse_cohort(base + "output: {outputs: [slices, lesions, provenance, heatmap, mask, overlay]}\n")
    assert short.output == long.output
    assert study_config_hash(short) == study_config_hash(long)
    other = parse_cohort(base + "output: {formats: [nifti]}\n")
    assert study_config_hash(other) != study_config_hash(short)


def test_cli_overrides_on_a_formats_cohort(formats_cohort: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["run", str(formats_cohort), "--device", "cpu", "--batch-size", "4", "--out", str(out)]
    assert main([*argv, "--dry-run"]) == 0
    assert "1 would run" in capsys.readouterr().out
    assert main(argv) == 0
    study = next((out / "studies").iterdir())
    assert (study / "heatmap.nii.gz").is_file() and (study / "overlay.png").is_file()


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO_ROOT / "cohorts").glob("*.yaml")))
def test_shipped_cohorts_round_trip_through_their_dump(name: str) -> None:
    from medzsad.config.yaml_loading import validate_cohort_data

    config = load_cohort(REPO_ROOT / "cohorts" / name)
    again = validate_cohort_data(config.model_dump(mode="json"), name, {})
    assert again == config
