"""Strata: too few normals per stratum (CLI exit 2 with the count), unknown stratum, DICOM scanner tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import medzsad.api as mz
from medzsad.calibration.profile_io import load_profile
from medzsad.calibration.strata import stratum_key, stratum_values
from medzsad.cli import EXIT_CONFIG, EXIT_OK, main
from medzsad.cohort.launch import run_cohort
from medzsad.cohort.options import RunOptions
from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series
from medzsad.errors import ConfigError

OFF = RunOptions(progress="off")


def _normals_yaml(root: Path, helpers: dict[str, Any], alpha: float) -> Path:
    manifest = root / "normals" / "manifest.csv"
    if not manifest.exists():
        helpers["write_studies"](root / "normals", [(f"mr-{i}", 300 + i) for i in range(5)])
    return helpers["cohort_yaml"](
        root / "normals.yaml",
        manifest,
        root / "normals-run",
        "mr-normals",
        "  outputs: [provenance]\n",
        f"profile:\n  strata: [preset, modality]\n  alpha: {alpha}\n",
    )


def test_too_few_normals_then_enough_then_unknown_stratum(
    tmp_path: Path, calib_helpers: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    normals = _normals_yaml(tmp_path, calib_helpers, 0.1)
    assert main(["profile", str(normals), "-q"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    # refused before scoring: 5 studies cannot make a stratum of ceil(1/0.1) - 1 = 9
    assert "5 normal studies, but a profile at alpha 0.1 needs at least 9" in err
    assert "add 4 normal studies" in err and "nothing was scored" in err
    assert not (tmp_path / "normals-run" / "studies").exists()

    normals = _normals_yaml(tmp_path, calib_helpers, 0.2)  # 5 >= ceil(1/0.2) - 1 = 4
    result = mz.build_profile(normals, tmp_path / "prof", OFF)
    assert result.run.n_done == 5
    prof = load_profile(tmp_path / "prof")
    # a NIfTI states no modality: the one its preset was chosen for (MR), as studies.csv says
    assert list(prof.strata) == ["preset=mr-brain|modality=MR"] and prof.strata_fields == (
        "preset",
        "modality",
    )
    assert main(["profile", str(normals), "-q", "-o", str(tmp_path / "prof2")]) == EXIT_OK  # resumes

    # enough studies in all, but one stratum short: refused after scoring, naming the stratum
    write = calib_helpers["write_studies"]
    mixed = tmp_path / "mixed"
    mr_rows = write(mixed, [(f"mr-{i}", 300 + i) for i in range(5)]).read_text()
    ct_rows = write(mixed, [("ct-0", 700)], ct_like=True).read_text()
    (mixed / "all.csv").write_text(mr_rows + ct_rows.splitlines(keepends=True)[1])
    short = calib_helpers["cohort_yaml"](
        tmp_path / "mixed.yaml", mixed / "all.csv", tmp_path / "mixed-run", "mixed",
        "  outputs: [provenance]\n", "profile:\n  strata: [preset]\n  alpha: 0.2\n",
    )  # fmt: skip
    assert main(["profile", str(short), "-q"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "has 1, needs 3 more" in err and "preset=ct-" in err

    # review: one study of the profiled stratum, one CT-like study (another preset) -> typed error
    mr = write(tmp_path / "review", [("mr-new", 999)]).read_text()
    ct = write(tmp_path / "review", [("ct-new", 998)], ct_like=True).read_text()
    # and a DICOM MR study: the NIfTI normals' stratum is its stratum too
    vol = calib_helpers["synthetic_study"](997).clip(0, None).astype(np.uint16)
    write_dicom_series(
        vol,
        np.diag([1.5, 1.5, 3.0, 1.0]),
        tmp_path / "review" / "mr-dicom",
        SeriesSpec("MR", "mr-dicom", "mr-dicom"),
    )
    dicom_row = f"mr-dicom,{tmp_path / 'review' / 'mr-dicom'}\n"
    (tmp_path / "review" / "all.csv").write_text(mr + ct.splitlines(keepends=True)[1] + dicom_row)
    review = calib_helpers["cohort_yaml"](
        tmp_path / "review.yaml", tmp_path / "review" / "all.csv", tmp_path / "review-run", "review"
    )
    prof_dir = tmp_path / "prof"
    text = review.read_text().replace(
        "{method: fixed, value: 0.5, min_lesion_ml: 0.05}",
        f"{{method: calibrated, profile: {prof_dir}, alpha: 0.2, min_lesion_ml: 0.05}}\n"
        f"  flag: {{profile: {prof_dir}, alpha: 0.2}}",
    )
    review.write_text(text)
    with pytest.raises(ConfigError, match=r"1 studies could not be calibrated and were refused"):
        run_cohort(review, OFF)
    # the other study is done and the tables are written; the CLI exits 2 (rerun: nothing rescored)
    assert main(["run", str(review), "-q"]) == EXIT_CONFIG
    run_dir = tmp_path / "review-run"
    errors = pd.read_csv(run_dir / "errors.csv")
    assert errors["study_id"].tolist() == ["ct-new"]
    assert errors["stage"].tolist() == ["calibrate"] and errors["error_type"].tolist() == ["ConfigError"]
    assert "stratum 'preset=ct-abdomen|modality=CT' is not in profile 'mr-normals'" in errors["message"][0]
    assert "rebuild it with medzsad profile" in errors["message"][0]
    table = pd.read_csv(run_dir / "studies.csv").set_index("study_id")
    assert table.loc["mr-new", "status"] == "done" and table.loc["ct-new", "status"] == "failed"
    assert table.loc["mr-dicom", "status"] == "done" and 0 < table.loc["mr-dicom", "p_value"] <= 1
    cal = prof.strata["preset=mr-brain|modality=MR"].scores
    s = table.loc["mr-new", "score"]
    assert table.loc["mr-new", "p_value"] == pytest.approx((1 + np.sum(cal >= s)) / 6)
    assert np.isnan(table.loc["ct-new", "p_value"])


def test_unknown_stratum_error_lists_the_known_ones(tmp_path: Path) -> None:
    from medzsad.calibration.profile_io import Profile

    prof = Profile("p", "m", "q", ("modality",), 0.1, 0.1, {}, "now", "0")
    with pytest.raises(ConfigError, match=r"'modality=CT' is not in profile 'p' \(it has: none\)"):
        prof.stratum("modality=CT")


def test_the_loader_reads_the_scanner_tags_the_stratum_uses(tmp_path: Path) -> None:
    """Manufacturer/model come from the headers the loader read (no second read of a DICOM file)."""
    from medzsad.io.readers import load_volume

    write_dicom_series(
        np.zeros((4, 4, 2), np.float32),
        np.eye(4),
        tmp_path / "s",
        SeriesSpec("CT", "strata-test", "strata-test"),
    )
    src = load_volume(tmp_path / "s").source
    assert src.manufacturer == "medzsad demo"
    v = stratum_values(" ct ", "ct-head", src.manufacturer, src.model_name)
    assert v == {
        "modality": "CT",
        "manufacturer": "medzsad demo",
        "model_name": src.model_name,
        "preset": "ct-head",
    }
    assert stratum_key(v, ["manufacturer", "preset"]) == "manufacturer=medzsad demo|preset=ct-head"
    assert stratum_key(v, []) == "all"
    assert stratum_values("", "mr-brain")["manufacturer"] == ""
