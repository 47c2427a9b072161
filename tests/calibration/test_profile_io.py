"""profile.json round trip, malformed/newer files, and the operating-point sentences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medzsad.calibration.operating_point import describe, describe_flag, run_operating_point
from medzsad.calibration.profile_io import (
    CalibrationStudy,
    Profile,
    Stratum,
    load_profile,
    write_profile,
)
from medzsad.config import FlagRule, ThresholdRule, parse_cohort
from medzsad.errors import ConfigError


def _profile() -> Profile:
    studies = tuple(CalibrationStudy(f"s{i}", 0.5 + i / 100, 0.3 + i / 50) for i in range(5))
    return Profile(
        name="site",
        model_hash="a" * 64,
        pipeline_hash="b" * 64,
        strata_fields=("modality",),
        min_lesion_ml=0.1,
        alpha_min=0.2,
        strata={"modality=CT": Stratum("modality=CT", {"modality": "CT"}, studies)},
        created="2026-11-30T08:00:00+00:00",
        medzsad_version="0.1.0",
    )


def test_round_trip(tmp_path: Path) -> None:
    write_profile(tmp_path, _profile())
    back = load_profile(tmp_path)
    assert back.to_json() == _profile().to_json()
    assert back.path == tmp_path and back.n_studies == 5
    assert back.strata["modality=CT"].scores.tolist() == [0.5, 0.51, 0.52, 0.53, 0.54]
    assert load_profile(tmp_path / "profile.json").n_studies == 5


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(schema_version=7), "newer medzsad .*upgrade medzsad or rebuild"),
        (lambda d: d.update(kind="other"), "not a medzsad profile"),
        (lambda d: d.pop("model_hash"), "malformed profile"),
        (lambda d: d["strata"]["modality=CT"]["studies"][0].update(score="x"), "must be a finite number"),
    ],
)
def test_bad_profiles_are_refused(tmp_path: Path, edit: object, match: str) -> None:
    write_profile(tmp_path, _profile())
    d = json.loads((tmp_path / "profile.json").read_text())
    edit(d)  # type: ignore[operator]
    (tmp_path / "profile.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=match):
        load_profile(tmp_path)


def test_missing_profile_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="build one with: medzsad profile"):
        load_profile(tmp_path / "nowhere")


def test_operating_point_sentences() -> None:
    cal = ThresholdRule(method="calibrated", profile="p", alpha=0.05)
    assert describe(cal, 0.61324, "site", 57) == "tau 0.6132 (profile site, n=57 normals, alpha 0.05)"
    assert describe(ThresholdRule()) == "heat >= 0.5 (uncalibrated threshold)"
    assert "uncalibrated threshold" in describe(ThresholdRule(method="percentile", value=99))
    flag = FlagRule(profile="p", alpha=0.1, control="fdr")
    assert describe_flag(flag, "site", 20) == (
        "flag at alpha 0.1, Benjamini-Hochberg false-discovery rate (profile site, n=20 normals)"
    )
    run = run_operating_point(parse_cohort("name: x\ninputs: {paths: [a]}\n"))
    assert run == {"threshold": "heat >= 0.5 (uncalibrated threshold)"}  # one sentence, no flag


def test_config_rules() -> None:
    with pytest.raises(ConfigError, match="calibrated needs profile"):
        parse_cohort("name: x\ninputs: {paths: [a]}\noutput:\n  threshold: {method: calibrated}\n")
    with pytest.raises(ConfigError, match="alpha"):
        parse_cohort("name: x\ninputs: {paths: [a]}\noutput:\n  flag: {profile: p, alpha: 1.5}\n")
    with pytest.raises(ConfigError, match="strata"):
        parse_cohort("name: x\ninputs: {paths: [a]}\nprofile:\n  strata: [scanner]\n")
    cfg = parse_cohort("name: x\ninputs: {paths: [a]}\nprofile:\n  strata: [modality, preset]\n")
    assert cfg.profile is not None and cfg.profile.strata == ("modality", "preset")


def test_ties_at_tau_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    from medzsad.calibration.operating_point import _warn_ties

    tied = tuple(CalibrationStudy(f"s{i}", 0.5, 1.0 if i >= 2 else 0.2) for i in range(5))
    prof = Profile("p", "m", "q", (), 0.1, 0.2, {"all": Stratum("all", {}, tied)}, "now", "0")
    with caplog.at_level("WARNING"):
        _warn_ties(prof, 0.2)
        _warn_ties(_profile(), 0.2)
    assert len(caplog.records) == 1 and "3 calibration lesion statistics equal tau 1.0000" in caplog.text
