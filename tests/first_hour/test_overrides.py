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
    changed = config.with_overrides(**{"model.device": "cpu", "model.batch_size": 3, "output.dir": "x"})
    assert changed.output.formats == ("nifti", "png")
    assert changed.output.outputs == config.output.outputs
    assert changed.model.batch_size == 3


def test_conflicting_formats_and_outputs_are_still_rejected(formats_cohort: Path) -> None:
    config = load_cohort(formats_cohort)
    with pytest.raises(ConfigError, match="not both"):
        config.with_overrides(**{"output.outputs": ["overlay"]})


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
