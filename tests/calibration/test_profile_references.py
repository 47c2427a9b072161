"""``profile: {references: K}``: references drawn by seed, disjoint from calibration, validity kept.

48 exchangeable synthetic normals (tiny random model); K=4 become references and their bank is
written into the profile; the other 44 are scored *with* the references and calibrate. The
validity check of issue 9 (random calibration/test splits of the stored numbers) must still hold,
a review cohort with ``model.references: true`` uses the bank, and a profile whose references
overlap its calibration set is refused.
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

import medzsad.api as mz
from medzsad.cohort.launch import run_cohort
from medzsad.cohort.options import RunOptions
from medzsad.errors import ConfigError
from medzsad.references.bank_io import BANK_FILE, load_bank
from medzsad.references.sampling import split_references

N_NORMALS = 48
K = 4
OFF = RunOptions(progress="off")
PROFILE = f"profile:\n  references: {K}\n  reference_seed: 3\n  alpha: 0.1\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, calib_helpers: dict[str, Any]) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("refsite")
    write, yaml_ = calib_helpers["write_studies"], calib_helpers["cohort_yaml"]
    result = calib_helpers["normals_profile"](root, "ref-normals", 1000, N_NORMALS, PROFILE)
    review = write(root / "review", [(f"new-{i:02d}", 5000 + i) for i in range(3)])
    return {"root": root, "profile": result, "review": review, "yaml": yaml_}


def _json(site: dict[str, Any]) -> dict[str, Any]:
    return json.loads((site["profile"].folder / "profile.json").read_text())


def test_references_are_seeded_disjoint_and_recorded(site: dict[str, Any]) -> None:
    d = _json(site)
    refs = d["references"]["ids"]
    calib = [s["id"] for s in d["strata"]["all"]["studies"]]
    every = [f"normal-{i:03d}" for i in range(N_NORMALS)]
    assert len(refs) == K and len(calib) == N_NORMALS - K
    assert set(refs).isdisjoint(calib) and set(refs) | set(calib) == set(every)
    assert tuple(refs) == split_references(every, K, 3).references
    bank, info = load_bank(site["profile"].folder / BANK_FILE)
    assert list(info.reference_ids) == refs and info.model_hash == d["model_hash"]
    assert bank.features.dtype.itemsize == 2 and bank.n_patches == d["references"]["n_patches"] > 0


@pytest.mark.parametrize("alpha", [0.1, 0.2])
def test_validity_holds_with_references(site: dict[str, Any], alpha: float) -> None:
    """The issue-9 validity check on the reference-mode calibration numbers (1000 random splits)."""
    studies = _json(site)["strata"]["all"]["studies"]
    assert_valid_over_splits(studies, n_cal=30, alpha=alpha, seed=int(alpha * 1000))


def _review_yaml(site: dict[str, Any], name: str, prof: Path, references: bool) -> Path:
    text = site["yaml"](site["root"] / f"{name}.yaml", site["review"], site["root"] / name, name).read_text()
    fixed = "  threshold: {method: fixed, value: 0.5, min_lesion_ml: 0.05}\n"
    text = text.replace(fixed, f"  flag: {{profile: {prof}, alpha: 0.2}}\n{fixed}")
    if references:
        text = text.replace("  batch_size: 8\n", "  batch_size: 8\n  references: true\n")
    path = site["root"] / f"{name}.yaml"
    path.write_text(text)
    return path


def test_review_with_references_uses_the_bank(site: dict[str, Any]) -> None:
    prof = site["profile"].folder
    summary = run_cohort(_review_yaml(site, "rev-refs", prof, True), OFF)
    assert summary.n_failed == 0
    table = pd.read_csv(summary.studies_csv)
    cal = np.array([s["score"] for s in _json(site)["strata"]["all"]["studies"]])
    for score, p in zip(table["score"], table["p_value"], strict=True):
        assert p == pytest.approx((1 + int(np.sum(cal >= score))) / (len(cal) + 1))
    prov = json.loads((summary.out_dir / "studies" / "new-00" / "provenance.json").read_text())
    assert prov["model"]["weights"]["references"] == _json(site)["references"]["ids"]
    assert "4 normal references (w=0.5)" in prov["model"]["description"]
    with pytest.raises(ConfigError, match="model hash"):  # zero-shot scores against a reference profile
        run_cohort(_review_yaml(site, "rev-zero", prof, False), OFF)


def test_references_that_are_also_calibration_studies_are_refused(
    site: dict[str, Any], tmp_path: Path
) -> None:
    bad = tmp_path / "bad-profile"
    shutil.copytree(site["profile"].folder, bad)
    d = json.loads((bad / "profile.json").read_text())
    d["strata"]["all"]["studies"][0]["id"] = d["references"]["ids"][0]
    (bad / "profile.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="both references and calibration"):
        run_cohort(_review_yaml(site, "rev-bad", bad, True), OFF)


def test_profile_holds_site_statistics_and_one_without_them_is_refused_in_one_line(
    site: dict[str, Any], tmp_path: Path
) -> None:
    d = _json(site)
    refs = d["references"]
    assert d["schema_version"] == 2 and refs["site_normalised"] is True and refs["axes"] == ["axial"]
    stats = refs["normalisation"]["axial"]
    assert stats["bins"] == len(stats["distance"]["scale"]) and min(stats["distance"]["scale"]) > 0
    assert stats["n_patches"] > 0
    old = tmp_path / "no-stats"
    shutil.copytree(site["profile"].folder, old)
    d["references"].pop("normalisation")
    (old / "profile.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="no statistics for maps in site units") as e:
        run_cohort(_review_yaml(site, "rev-old", old, True), OFF)
    assert "\n" not in str(e.value) and "site_normalised: false" in str(e.value)


def test_site_units_need_two_references_refused_before_scoring(
    tmp_path: Path, calib_helpers: dict[str, Any]
) -> None:
    normals = calib_helpers["write_studies"](tmp_path / "n", [(f"n{i}", 100 + i) for i in range(10)])
    one = PROFILE.replace(f"references: {K}", "references: 1")
    path = calib_helpers["cohort_yaml"](tmp_path / "one.yaml", normals, tmp_path / "run", "one", "", one)
    with pytest.raises(ConfigError, match="references >= 2 or model.site_normalised: false") as e:
        mz.build_profile(path, options=OFF)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run" / "studies").exists()  # nothing was scored


def test_a_profile_build_lists_the_normals_once(
    tmp_path: Path, calib_helpers: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Size check, reference draw and scoring share one listing (a PACS input is queried once)."""
    import medzsad.cohort.inputs as inputs
    import medzsad.cohort.launch as launch
    import medzsad.site_profile.builder as builder
    import medzsad.site_profile.references as references

    calls: list[str] = []

    def counted(cfg: Any) -> Any:
        calls.append(cfg.name)
        return inputs.collect_studies(cfg)

    for module in (launch, builder, references):
        monkeypatch.setattr(module, "collect_studies", counted)
    normals = calib_helpers["write_studies"](tmp_path / "n", [(f"n{i}", 200 + i) for i in range(8)])
    small = "profile:\n  references: 2\n  reference_seed: 1\n  alpha: 0.2\n"
    write_yaml = calib_helpers["cohort_yaml"]
    path = write_yaml(tmp_path / "small.yaml", normals, tmp_path / "run", "small", "", small)
    result = mz.build_profile(path, options=OFF)
    assert calls == ["small"]
    assert result.run.n_done == 8 and result.profile.n_studies == 6
