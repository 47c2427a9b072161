"""``run -i STUDY --profile DIR`` uses the settings the profile was built with.

A user walk-through could not use any profile built from a cohort file with ``-i``: ``-i`` never
turned the profile's few-shot references on, and its pipeline and study score were its own, so
every ``-i --profile`` was refused. A cohort file that differs from its profile is still refused,
and the message names what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import medzsad.api as mz
from medzsad.cli import EXIT_CONFIG, main
from medzsad.cohort.options import RunOptions
from medzsad.config.single_study import FAST_IMAGE_SIZE, PROFILE_JSON
from medzsad.errors import ConfigError

#: ``--smoke --fast``'s model, so that ``run -i ... --smoke --fast`` fits the profile's model hash.
SMOKE_FAST = (
    f"model: {{backbone: null, tiny: true, clip_weights: random, prompt_weights: random, "
    f"image_size: {FAST_IMAGE_SIZE['smoke']}, feature_layers: [2, 4, 6, 8], dpam_layers: 6, seed: 0, "
    "device: cpu}\n"
)
#: Not -i's defaults: -i must take each from the profile.
PIPELINE = "pipeline: {preset: mr-brain, on_gap: resample}\n"
OUTPUT = "  study_score: {method: top_volume}\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, calib_helpers: dict[str, Any]) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("profile-i")
    normals = calib_helpers["write_studies"](root / "normals", [(f"n{i}", 300 + i) for i in range(6)])
    study = (
        calib_helpers["write_studies"](root / "review", [("sick", 900)], lesion=True).parent / "sick.nii.gz"
    )
    text = (
        f"name: normals\ninputs:\n  manifest: {normals}\n{SMOKE_FAST}{PIPELINE}"
        f"output:\n  dir: {root / 'normals-run'}\n  outputs: [provenance]\n"
        f"  threshold: {{method: fixed, value: 0.5, min_lesion_ml: 0.05}}\n{OUTPUT}"
        "profile: {alpha: 0.25, references: 2}\n"
    )
    (root / "normals.yaml").write_text(text)
    result = mz.build_profile(root / "normals.yaml", options=RunOptions(progress="off"))
    return {"root": root, "profile": result.folder, "study": study, "yaml": text}


def test_the_profile_keeps_the_settings_its_hashes_cover(built: dict[str, Any]) -> None:
    assert PROFILE_JSON == "profile.json"  # the name calibration.profile_io writes
    kept = json.loads((built["profile"] / PROFILE_JSON).read_text())["settings"]
    assert kept["model"]["references"] is True and kept["model"]["image_size"] == FAST_IMAGE_SIZE["smoke"]
    assert (
        kept["pipeline_section"]["preset"] == "mr-brain" and kept["pipeline_section"]["on_gap"] == "resample"
    )
    assert kept["pipeline"]["study_score"]["method"] == "top_volume"


def test_run_i_with_the_profile_flags_the_study(built: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "one"
    args = ["run", "-i", str(built["study"]), "-o", str(out), "--smoke", "--fast", "-q"]
    assert main([*args, "--profile", str(built["profile"])]) == 0
    row = pd.read_csv(out / "studies.csv").iloc[0]
    assert row["status"] == "done" and 0 < row["p_value"] <= 1 and "flagged" in row
    prov = json.loads(next((out / "studies").glob("*/provenance.json")).read_text())
    # cut at the profile's tau, at the smallest alpha its 4 calibration normals support
    assert prov["operating_point"].startswith("tau ") and "alpha 0.25" in prov["operating_point"]


def test_a_cohort_file_that_differs_is_refused_naming_the_difference(built: dict[str, Any]) -> None:
    prof = built["profile"]
    text = built["yaml"].replace("on_gap: resample", "on_gap: warn").replace("name: normals", "name: review")
    text = text.replace(str(built["root"] / "normals-run"), str(built["root"] / "review-run"))
    text = text.replace(
        "  threshold: {method: fixed, value: 0.5, min_lesion_ml: 0.05}\n",
        f"  threshold: {{method: calibrated, profile: {prof}, alpha: 0.25, min_lesion_ml: 0.05}}\n",
    ).replace("profile: {alpha: 0.25, references: 2}\n", "")
    text = text.replace("device: cpu}", "device: cpu, references: true}")
    review = built["root"] / "review.yaml"
    review.write_text(text)
    with pytest.raises(
        ConfigError, match=r'it differs in pipeline\.on_gap \(profile "resample", this cohort "warn"\)'
    ):
        mz.run_cohort(review, RunOptions(progress="off"))
    assert main(["run", str(review), "-q"]) == EXIT_CONFIG
