"""medzsad profile on 64 exchangeable synthetic normals (scored once), then review cohorts against it.

Acceptance: over random calibration/test splits of the stored scores and lesion statistics the
flagged and any-lesion fractions stay <= alpha + 0.02; studies.csv p-values and the calibrated tau
equal the formulas recomputed from profile.json; mismatched profiles are refused with typed errors.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conformal_check import assert_valid_over_splits

import medzsad.api as mz
from medzsad.calibration.conformal import benjamini_hochberg
from medzsad.calibration.lesion_stat import lesion_statistic_affine
from medzsad.cli import EXIT_CONFIG, main
from medzsad.cohort.launch import run_cohort
from medzsad.cohort.options import RunOptions
from medzsad.errors import ConfigError

N_NORMALS = 64
OFF = RunOptions(progress="off")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, calib_helpers: dict[str, Any]) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("site")
    write, yaml_ = calib_helpers["write_studies"], calib_helpers["cohort_yaml"]
    normals = write(root / "normals", [(f"normal-{i:03d}", 1000 + i) for i in range(N_NORMALS)])
    normals_yaml = yaml_(
        root / "normals.yaml", normals, root / "normals-run", "site-normals", "  outputs: [provenance]\n"
    )
    result = mz.build_profile(normals_yaml, options=OFF)
    healthy = write(root / "review", [(f"new-{i:02d}", 5000 + i) for i in range(10)]).read_text()
    sick = write(root / "review", [(f"sick-{i}", 7000 + i) for i in range(2)], lesion=True).read_text()
    manifest = root / "review" / "all.csv"
    manifest.write_text(healthy + "".join(sick.splitlines(keepends=True)[1:]))
    return {"root": root, "profile": result, "review_manifest": manifest, "yaml": yaml_, "write": write}


def _profile_json(site: dict[str, Any]) -> dict[str, Any]:
    return json.loads((site["profile"].folder / "profile.json").read_text())


def test_profile_folder_contents(site: dict[str, Any]) -> None:
    res = site["profile"]
    assert res.folder == res.run.out_dir / "profile"
    assert (res.folder / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = _profile_json(site)
    # schema 2 since issue 21 (statistics of maps in site units); a profile without references has none
    assert d["schema_version"] == 2 and d["name"] == "site-normals" and d["n_studies"] == N_NORMALS
    assert "references" not in d
    assert len(d["model_hash"]) == 64 and len(d["pipeline_hash"]) == 64 and d["medzsad_version"]
    studies = d["strata"]["all"]["studies"]
    assert sorted(s["id"] for s in studies) == [f"normal-{i:03d}" for i in range(N_NORMALS)]
    assert "normals" not in json.dumps(d).replace("site-normals", "")  # no input paths in the profile
    # the normals run itself used a fixed threshold: its provenance says so
    prov = json.loads((res.run.out_dir / "studies" / "normal-000" / "provenance.json").read_text())
    assert prov["operating_point"] == "heat >= 0.5 (uncalibrated threshold)"


@pytest.mark.parametrize("alpha", [0.1, 0.2])
def test_validity_over_random_splits(site: dict[str, Any], alpha: float) -> None:
    """Scored once; 1000 random calibration/test splits of the stored numbers (no rescoring)."""
    studies = _profile_json(site)["strata"]["all"]["studies"]
    assert len(studies) == N_NORMALS
    assert_valid_over_splits(studies, n_cal=44, alpha=alpha, seed=int(alpha * 1000))


REVIEW_OUTPUT = "  outputs: [heatmap, mask, provenance, html]\n"


def _review_yaml(site: dict[str, Any], name: str, control: str = "fpr", **kw: str) -> Path:
    prof = site["profile"].folder
    threshold = kw.get(
        "threshold", f"{{method: calibrated, profile: {prof}, alpha: 0.5, min_lesion_ml: 0.05}}"
    )
    out = (
        REVIEW_OUTPUT
        + f"  flag: {{profile: {prof}, alpha: 0.2, control: {control}}}\n"
        + f"  threshold: {threshold}\n"
    )
    text = site["yaml"](
        site["root"] / f"{name}.yaml", site["review_manifest"], site["root"] / "review-run", "review"
    ).read_text()
    text = text.replace("  threshold: {method: fixed, value: 0.5, min_lesion_ml: 0.05}\n", out)
    text = text + kw.get("extra", "")
    for old, new in kw.get("replace", {}).items():  # type: ignore[attr-defined]
        text = text.replace(old, new)
    path = site["root"] / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def review(site: dict[str, Any]) -> dict[str, Any]:
    summary = run_cohort(_review_yaml(site, "review-fpr"), OFF)
    assert summary.n_failed == 0
    return {"summary": summary, "table": pd.read_csv(summary.studies_csv)}


def test_p_value_and_flag_equal_the_formula(site: dict[str, Any], review: dict[str, Any]) -> None:
    cal = np.array([s["score"] for s in _profile_json(site)["strata"]["all"]["studies"]])
    t = review["table"]
    for score, p, flagged in zip(t["score"], t["p_value"], t["flagged"], strict=True):
        expected = (1 + int(np.sum(cal >= score))) / (len(cal) + 1)
        assert p == pytest.approx(expected, abs=1e-12)
        assert bool(flagged) == (expected <= 0.2)
    sick = t[t["study_id"].str.startswith("sick")]
    assert len(sick) == 2


def test_tau_equals_the_formula_and_masks_follow_it(site: dict[str, Any], review: dict[str, Any]) -> None:
    stats = np.sort([s["lesion_statistic"] for s in _profile_json(site)["strata"]["all"]["studies"]])
    tau = float(stats[math.ceil((N_NORMALS + 1) * 0.5) - 1])
    studies = review["summary"].out_dir / "studies"
    seen = set()
    for folder in sorted(studies.iterdir()):
        prov = json.loads((folder / "provenance.json").read_text())
        assert prov["calibration"]["tau"] == tau
        assert (
            prov["operating_point"]
            == f"tau {tau:.4f} (profile site-normals, n={N_NORMALS} normals, alpha 0.5)"
        )
        heat = np.asarray(nib.load(folder / "heatmap.nii.gz").dataobj)
        mask = np.asarray(nib.load(folder / "mask.nii.gz").dataobj)
        assert np.all(heat[mask > 0] >= np.float32(tau))
        # any lesion exactly when the study's own lesion statistic reaches tau
        stat = lesion_statistic_affine(heat, nib.load(folder / "heatmap.nii.gz").affine, 0.05)
        has_lesion = bool(mask.any())
        assert has_lesion == (stat >= tau)
        seen.add(has_lesion)
    assert seen == {True, False}  # both sides of tau occur among these 12 studies
    page = (review["summary"].out_dir / "report.html").read_text()
    assert f"tau {tau:.4f} (profile site-normals" in page


def test_fdr_is_benjamini_hochberg_over_the_run(site: dict[str, Any], review: dict[str, Any]) -> None:
    summary = run_cohort(_review_yaml(site, "review-fdr", control="fdr"), OFF)
    assert summary.n_done == 0 and summary.n_skipped == 12  # flags only change the tables
    t = pd.read_csv(summary.studies_csv)
    assert t["p_value"].tolist() == pytest.approx(review["table"]["p_value"].tolist())
    assert t["flagged"].astype(bool).tolist() == benjamini_hochberg(t["p_value"].to_numpy(), 0.2).tolist()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"replace": {"  seed: 0\n": "", "  batch_size: 8\n": "  batch_size: 8\n  seed: 3\n"}}, "model hash"),
        ({"extra": "pipeline:\n  skip_empty_slices: false\n"}, "pipeline hash"),
        (
            {"threshold": "{method: calibrated, profile: PROF, alpha: 0.2, min_lesion_ml: 0.2}"},
            "min_lesion_ml is 0.2 but profile",
        ),
        (
            {"threshold": "{method: calibrated, profile: PROF, alpha: 0.01, min_lesion_ml: 0.05}"},
            "needs at least 99 .*add 35 more",
        ),
    ],
)
def test_profile_that_does_not_fit_is_refused(
    site: dict[str, Any], change: dict[str, Any], match: str
) -> None:
    if "threshold" in change:
        change = {"threshold": change["threshold"].replace("PROF", str(site["profile"].folder))}
    path = _review_yaml(site, "bad", **change)
    with pytest.raises(ConfigError, match=match):
        run_cohort(path, RunOptions(progress="off", out_dir=str(site["root"] / "bad-run")))
    assert not (site["root"] / "bad-run").exists()  # refused before anything was written
    assert main(["run", str(path), "-q", "--out", str(site["root"] / "bad-run")]) == EXIT_CONFIG


def test_newer_schema_is_refused(site: dict[str, Any], tmp_path: Path) -> None:
    copy = tmp_path / "newer"
    shutil.copytree(site["profile"].folder, copy)
    d = json.loads((copy / "profile.json").read_text())
    d["schema_version"] = 3  # one above the schema this medzsad writes (2)
    (copy / "profile.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="newer medzsad"):
        mz.load_profile(copy)
    assert mz.load_profile(site["profile"].folder).n_studies == N_NORMALS
