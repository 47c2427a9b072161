"""A default written out is the default: the study and pipeline hashes see the effective pipeline.

A user walk-through built the demo's profile from a cohort that spelt out ``axes: [axial]`` and
``skip_empty_slices: true``; a review cohort with only ``pipeline: {preset: auto}`` (and every
``run -i --profile``) was refused, and a finished run was recomputed in full, although every study
is preprocessed alike. What differs in effect still differs, and a refusal names it.
"""

from __future__ import annotations

import pytest

from medzsad.calibration.hashes import differences, pipeline_hash, pipeline_settings
from medzsad.config import parse_cohort
from medzsad.study.hashing import study_config_hash

BASE = "name: x\ninputs: {paths: [a.nii]}\n"


def _hashes(pipeline: str) -> tuple[str, str]:
    cfg = parse_cohort(BASE + (f"pipeline: {pipeline}\n" if pipeline else ""), "c.yaml")
    return study_config_hash(cfg), pipeline_hash(cfg)


@pytest.mark.parametrize(
    "spelt",
    [
        "{preset: auto}",
        "{axes: [axial]}",
        "{axis: axial}",
        "{fusion: max, axis_stride: 4}",  # one axis is never fused nor strided
        "{series: {}}",
    ],
)
def test_writing_out_a_default_changes_no_hash(spelt: str) -> None:
    assert _hashes(spelt) == _hashes("")


@pytest.mark.parametrize(
    ("preset", "same"),
    [("mr-brain", True), ("auto", False)],  # xray-2d, one of auto's presets, does not skip
)
def test_an_override_equal_to_the_presets_value_changes_nothing(preset: str, same: bool) -> None:
    spelt = _hashes(f"{{preset: {preset}, skip_empty_slices: true}}")
    assert (spelt == _hashes(f"{{preset: {preset}}}")) is same


@pytest.mark.parametrize(
    "changed",
    [
        "{axes: [coronal]}",
        "{axes: [axial, coronal]}",
        "{skip_empty_slices: false}",
        "{on_gap: fail}",
        "{preset: ct-head}",
        "{window: {center: 40, width: 80}}",
        "{series: {min_slices: 3}}",
    ],
)
def test_what_changes_a_study_changes_both_hashes(changed: str) -> None:
    ours, default = _hashes(changed), _hashes("")
    assert ours[0] != default[0] and ours[1] != default[1]


def test_fusion_and_stride_count_with_several_axes() -> None:
    three = "{axes: [axial, coronal, sagittal]"
    assert _hashes(three + "}") != _hashes(three + ", fusion: max}")
    assert _hashes(three + "}") != _hashes(three + ", axis_stride: 4}")


def test_differences_name_the_keys_and_both_values() -> None:
    ours = pipeline_settings(parse_cohort(BASE + "pipeline: {preset: mr-brain}\n", "c.yaml"))
    theirs = pipeline_settings(
        parse_cohort(BASE + "pipeline: {preset: mr-brain, skip_empty_slices: false}\n", "c.yaml")
    )
    assert differences(ours, theirs) == [("pipeline.presets.mr-brain.skip_empty_slices", True, False)]
    assert differences({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, "m") == [("m.a.c", None, 2)]
