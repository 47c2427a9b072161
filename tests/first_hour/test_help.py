"""The help reads like the tools users know (TotalSegmentator, MONAI): wrapped, complete, consistent."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medzsad.cli import EXIT_CONFIG, EXIT_OK, main


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "profile", "inspect"])
def test_descriptions_are_wrapped(capsys: pytest.CaptureFixture[str], command: str) -> None:
    text = _help(capsys, command)
    description = text.split("\n\n")[1]
    assert len(description.splitlines()) > 1 and max(len(line) for line in description.splitlines()) <= 100


def test_run_help_lists_presets_devices_and_what_totalsegmentator_users_look_for(capsys) -> None:
    text = " ".join(_help(capsys, "run").split())
    for preset in ("ct-abdomen", "ct-chest", "ct-head", "mr-brain", "xray-2d"):
        assert preset in text
    assert "cuda (or gpu)" in text
    assert "--statistics is lesions.csv" in text and "--preview is overlay.png" in text
    assert "mask.nii.gz holds lesion ids" in text and "--binary-mask" in text
    assert "7 the PACS refused us" in text


def test_push_offers_no_retrieve_options_and_pull_does(capsys) -> None:
    assert "--move-port" not in _help(capsys, "push")
    assert "--move-port" in _help(capsys, "pull")


def test_weights_list_shows_urls_with_urls_and_verbose_means_logging(capsys) -> None:
    text = _help(capsys, "weights", "list")
    assert "--urls" in text and "--verbose" not in text  # -v is logging everywhere, never "URLs"
    assert main(["weights", "list", "--urls"]) == EXIT_OK
    assert "https://" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["evaluate", "benchmark"])
def test_evaluate_and_benchmark_default_to_auto_like_run(capsys, command: str) -> None:
    assert "(default: auto)" in " ".join(_help(capsys, command).split())


def test_an_unknown_flag_prints_the_command_usage(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["run", "x.yaml", "--bogus"])
    assert e.value.code == EXIT_CONFIG
    err = capsys.readouterr().err
    assert (
        err.startswith("usage: medzsad run ") and "medzsad run: error: unrecognized arguments: --bogus" in err
    )


def test_binary_mask_writes_zero_and_one(tmp_path: Path, scan: Path) -> None:
    from medzsad.cohort.launch import run_cohort
    from medzsad.config.single_study import single_study_cohort

    masks = {}
    for name, binary in (("ids", False), ("binary", True)):
        cfg = single_study_cohort(
            scan, out_dir=tmp_path / name, smoke=True, binary_mask=binary, formats=["nifti"]
        )
        cfg = cfg.with_overrides(
            **{"output.threshold": {"method": "percentile", "value": 90, "min_lesion_ml": 0}}
        )
        assert run_cohort(cfg).n_done == 1
        masks[name] = np.asarray(nib.load(tmp_path / name / "studies" / "head" / "mask.nii.gz").dataobj)
    assert masks["ids"].max() > 1  # several lesions: ids 1..n
    np.testing.assert_array_equal(masks["binary"], (masks["ids"] > 0).astype(masks["binary"].dtype))
    assert set(np.unique(masks["binary"])) == {0, 1}
