"""Conformal validity with three axes and maps in site units (the defaults with references).

40 exchangeable synthetic normals scored on axial, coronal and sagittal slices (tiny random
model); K=4 become references (one bank and one set of site statistics per axis), the other 36
calibrate on the fused, site-normalised heat maps. The issue-9 validity check (random
calibration/test splits of the stored numbers) must hold on these final maps, and a review cohort
scores every axis against its own bank.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conformal_check import assert_valid_over_splits

from medzsad.cohort.launch import run_cohort
from medzsad.cohort.options import RunOptions
from medzsad.errors import ConfigError
from medzsad.references.bank_io import BANK_FILE, load_banks

N_NORMALS = 40
K = 4
OFF = RunOptions(progress="off")
AXES = "pipeline: {axes: [axial, coronal, sagittal]}\n"
PROFILE = f"profile:\n  references: {K}\n  reference_seed: 1\n  alpha: 0.1\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, calib_helpers: dict[str, Any]) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("three-axes")
    write, yaml_ = calib_helpers["write_studies"], calib_helpers["cohort_yaml"]
    result = calib_helpers["normals_profile"](root, "n3", 3000, N_NORMALS, AXES + PROFILE)
    review = write(root / "review", [("new-0", 6000), ("new-1", 6001)])
    sick = write(root / "sick", [("sick-0", 7000)], lesion=True)
    rows = review.read_text() + f"sick-0,{sick.parent / 'sick-0.nii.gz'}\n"
    review.write_text(rows)
    return {"root": root, "profile": result, "review": review, "yaml": yaml_}


def _json(site: dict[str, Any]) -> dict[str, Any]:
    return json.loads((site["profile"].folder / "profile.json").read_text())


def test_each_axis_has_its_bank_and_site_statistics(site: dict[str, Any]) -> None:
    banks, info = load_banks(site["profile"].folder / BANK_FILE)
    assert info.axes == ("axial", "coronal", "sagittal") and list(banks) == list(info.axes)
    assert all(b.anomaly is not None and b.n_patches > 0 for b in banks.values())
    refs = _json(site)["references"]
    assert refs["axes"] == list(info.axes) and set(refs["normalisation"]) == set(info.axes)


@pytest.mark.parametrize("alpha", [0.1, 0.2])
def test_validity_holds_on_fused_site_normalised_maps(site: dict[str, Any], alpha: float) -> None:
    studies = _json(site)["strata"]["all"]["studies"]
    assert len(studies) == N_NORMALS - K
    assert_valid_over_splits(studies, n_cal=24, alpha=alpha, seed=int(alpha * 1000) + 3)


def test_review_scores_every_axis_against_its_own_bank(site: dict[str, Any]) -> None:
    prof = site["profile"].folder
    path = site["yaml"](
        site["root"] / "review.yaml",
        site["review"],
        site["root"] / "review-run",
        "review3",
        f"  flag: {{profile: {prof}, alpha: 0.2}}\n",
        AXES,
    )
    path.write_text(path.read_text().replace("  batch_size: 8\n", "  batch_size: 8\n  references: true\n"))
    summary = run_cohort(path, OFF)
    assert summary.n_failed == 0
    table = pd.read_csv(summary.studies_csv)
    cal = np.array([s["score"] for s in _json(site)["strata"]["all"]["studies"]])
    for score, p in zip(table["score"], table["p_value"], strict=True):
        assert p == pytest.approx((1 + int(np.sum(cal >= score))) / (len(cal) + 1))
    slices = pd.read_csv(summary.out_dir / "studies" / "new-0" / "slices.csv")
    assert list(slices["axis"].unique()) == ["axial", "coronal", "sagittal"]
    assert slices.groupby("axis")["score"].count().min() > 0
    prov = json.loads((summary.out_dir / "studies" / "new-0" / "provenance.json").read_text())
    assert "maps in site units" in prov["model"]["description"]
    assert prov["study"]["series"]["axis"] == "axial+coronal+sagittal"


def test_a_profile_without_one_axis_s_site_statistics_is_refused_naming_it(
    site: dict[str, Any], tmp_path: Path
) -> None:
    """Checked once for every profile a cohort uses: here the flag's, before anything is scored."""
    partial = tmp_path / "partial-profile"
    shutil.copytree(site["profile"].folder, partial)
    d = _json(site)
    d["references"]["normalisation"].pop("coronal")
    (partial / "profile.json").write_text(json.dumps(d))
    path = site["yaml"](
        tmp_path / "review.yaml",
        site["review"],
        tmp_path / "run",
        "partial",
        f"  flag: {{profile: {partial}}}\n",
        AXES,
    )
    path.write_text(path.read_text().replace("  batch_size: 8\n", "  batch_size: 8\n  references: true\n"))
    with pytest.raises(
        ConfigError, match=r"output.flag profile .* no statistics for maps in site units"
    ) as e:
        run_cohort(path, OFF)
    assert "for axes ['coronal']" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run" / "studies").exists()  # refused before scoring
