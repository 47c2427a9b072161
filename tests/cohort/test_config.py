from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from medzsad.config import (
    DEFAULT_OUTPUTS,
    CohortConfig,
    OutputKind,
    load_cohort,
    parse_cohort,
)
from medzsad.errors import ConfigError
from medzsad.study.hashing import study_config_hash

REPO = Path(__file__).resolve().parents[2]


def _err(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse_cohort(text, "c.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unknown_keys_name_file_line_section_and_allowed_keys():
    msg = _err("name: x\ninputs:\n  paths: [a]\noutput:\n  dir: o\n  thresold: 3\n")
    assert msg.startswith(
        "c.yaml:6: unknown key 'thresold' in output "
        "(allowed: dir, formats, outputs, keep_empty_frames, threshold"
    )
    assert _err("name: x\ninputs: {paths: [a]}\nmodle: {}\n").startswith(
        "c.yaml:3: unknown key 'modle' in the top level"
    )
    nested = _err("name: x\ninputs: {paths: [a]}\noutput:\n  threshold:\n    method: fixed\n    valu: 1\n")
    assert nested.startswith(
        "c.yaml:6: unknown key 'valu' in output.threshold "
        "(allowed: method, value, min_lesion_ml, profile, alpha)"
    )
    assert _err("name: x\ninputs: {paths: [a]}\nbase_dir: /\n").startswith("c.yaml:3: unknown key 'base_dir'")


def test_bad_values_missing_keys_and_bad_yaml():
    assert _err("name: x\ninputs: {paths: [a]}\nmodel:\n  device: tpu\n").startswith(
        "c.yaml:4: model.device:"
    )
    # TotalSegmentator's spelling: gpu is cuda
    assert parse_cohort("name: x\ninputs: {paths: [a]}\nmodel:\n  device: gpu:1\n").model.device == "cuda:1"
    # the patch-size check happens once, when the backbone is built (tests/cohort/test_model_settings.py)
    assert _err("name: x\ninputs: {paths: [a]}\nmodel:\n  image_size: 0\n").startswith(
        "c.yaml:4: model.image_size"
    )
    assert (
        _err("inputs: {paths: [a]}\n") == "c.yaml: missing key 'name' in the top level (see docs/cohort.md)"
    )
    assert "give at least one of" in _err("name: x\ninputs: {}\n")
    assert _err("name: x\n  inputs: [\n").startswith("c.yaml:2: invalid YAML")
    assert "tiny: true builds a random" in _err("name: x\ninputs: {paths: [a]}\nmodel: {tiny: true}\n")
    assert _err("- a\n- b\n").startswith("c.yaml: a cohort file must be a YAML mapping")
    with pytest.raises(ConfigError, match="cannot read the cohort file"):
        load_cohort("/nonexistent/cohort.yaml")


def test_defaults_paths_overrides_and_hash(tmp_path):
    f = tmp_path / "sub" / "c.yaml"
    f.parent.mkdir()
    f.write_text("name: demo\ninputs:\n  manifest: ../m.csv\nexecutor: local\n")
    c = load_cohort(f)
    assert isinstance(c, CohortConfig) and c.executor.kind == "local" and c.executor.prefetch == 1
    assert c.resolve(c.inputs.manifest).resolve() == (tmp_path / "m.csv").resolve()
    assert c.out_dir == Path("reports/demo")
    # model settings are overrides (None): the architecture JSON is the only default
    assert c.model.backbone is None and c.model.image_size is None and c.model.feature_layers is None
    assert c.model.batch_size == 8 and c.model.device == "auto" and not c.model.is_smoke
    assert c.output.outputs == DEFAULT_OUTPUTS and OutputKind.HTML in c.output.outputs
    c2 = c.with_overrides(**{"model.device": "cpu", "model.batch_size": 2})
    assert c2.model.device == "cpu" and c2.source_file == c.source_file
    assert study_config_hash(c2) == study_config_hash(c)  # device and batch size do not change outputs
    c3 = c.with_overrides(**{"output.threshold": {"method": "fixed", "value": 0.7}})
    assert study_config_hash(c3) != study_config_hash(c)
    with pytest.raises(ConfigError, match="model.batch_size"):
        c.with_overrides(**{"model.batch_size": 0})
    with pytest.raises(ValidationError):  # frozen
        c.name = "y"  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "cohorts").glob("*.yaml")))
def test_shipped_cohort_files_load(name):
    c = load_cohort(REPO / "cohorts" / name)
    assert c.inputs.manifest in ("../demo-data/manifest.csv", "../demo-data/normals.csv")
    assert not c.model.is_smoke  # --smoke swaps the model of any cohort; none ships random weights


def test_docs_describe_every_key():
    doc = (REPO / "docs" / "cohort.md").read_text()
    from medzsad.config import (
        InputsConfig,
        LocalExecutorConfig,
        ModelConfig,
        OutputConfig,
        PipelineConfig,
        RayExecutorConfig,
        SeriesOverrides,
        StudyScoreRule,
        ThresholdRule,
        WindowConfig,
    )

    for model in (InputsConfig, PipelineConfig, WindowConfig, SeriesOverrides, ModelConfig, OutputConfig,
                  ThresholdRule, StudyScoreRule, LocalExecutorConfig, RayExecutorConfig):  # fmt: skip
        for key in model.model_fields:
            assert f"`{key}`" in doc, (model.__name__, key)
    for kind in OutputKind:
        assert f"`{kind.value}`" in doc
    run_help = ["--device", "--batch-size", "--out", "--force", "--dry-run", "--quiet", "--show-ids"]
    for opt in run_help:
        assert f"`{opt}" in doc, opt


def test_output_formats_short_form_maps_to_files():
    from medzsad.config import OutputKind, parse_cohort

    cfg = parse_cohort(
        "name: f\ninputs: {paths: [a.nii]}\noutput:\n  formats: [nifti, dicom-seg, slicer, png, html]\n"
        "  keep_empty_frames: true\n",
        "f.yaml",
    )
    kinds = set(cfg.output.outputs)
    assert kinds == {
        OutputKind.HEATMAP,
        OutputKind.MASK,
        OutputKind.OVERLAY,
        OutputKind.HTML,
        OutputKind.DICOM_SEG,
        OutputKind.SLICER,
        OutputKind.SLICES,
        OutputKind.LESIONS,
        OutputKind.PROVENANCE,
    }
    assert cfg.output.keep_empty_frames is True
    with pytest.raises(ConfigError, match="f.yaml:3: output: unknown output format"):
        parse_cohort("name: f\ninputs: {paths: [a.nii]}\noutput:\n  formats: [nifti, jpeg]\n", "f.yaml")
    with pytest.raises(ConfigError, match="did you mean 'png' for 'pngg'"):
        parse_cohort("name: f\ninputs: {paths: [a.nii]}\noutput:\n  formats: [nifti, pngg]\n", "f.yaml")
    with pytest.raises(ConfigError, match="not both"):
        parse_cohort(
            "name: f\ninputs: {paths: [a.nii]}\noutput: {formats: [png], outputs: [overlay]}\n", "f.yaml"
        )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("{kind: ray, prefetch: 2}", "'prefetch' is a key of the local executor, not of kind ray"),
        ("{kind: ray, worker_memory_gb: 4}", "'worker_memory_gb' is a key of the local executor"),
        ("{kind: ray, workers: 4}", "'workers' is a key of the local executor, not of kind ray"),
        ("{workers: 2, actors: 3}", "'actors' is a key of the ray executor, not of kind local"),
        ("{kind: ray, actros: 3}", "unknown key 'actros' (did you mean 'actors'?)"),
    ],
)
def test_a_key_of_the_other_executor_kind_is_refused_in_one_line(section: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_cohort(f"name: x\ninputs: {{paths: [a.nii]}}\nexecutor: {section}\n", "c.yaml")
    message = str(e.value)
    assert message.startswith("c.yaml:3: executor (kind ") and expected in message
    assert "\n" not in message


def test_executor_kinds_parse_with_their_own_keys() -> None:
    from medzsad.config import LocalExecutorConfig, RayExecutorConfig

    base = "name: x\ninputs: {paths: [a.nii]}\n"
    assert isinstance(parse_cohort(base).executor, LocalExecutorConfig)
    assert isinstance(parse_cohort(base + "executor: {workers: 0}\n").executor, LocalExecutorConfig)
    ray_cfg = parse_cohort(base + "executor: {kind: ray, actors: 4, study_timeout_s: 60}\n").executor
    assert isinstance(ray_cfg, RayExecutorConfig) and (ray_cfg.actors, ray_cfg.study_timeout_s) == (4, 60)
    assert isinstance(parse_cohort(base + "executor: ray\n").executor, RayExecutorConfig)


def test_axis_is_the_one_element_spelling_of_axes_and_hashes_the_same() -> None:
    base = "name: x\ninputs: {paths: [a.nii]}\n"
    one = parse_cohort(base + "pipeline: {axis: coronal}\n", "c.yaml")
    listed = parse_cohort(base + "pipeline: {axes: [coronal]}\n", "c.yaml")
    assert one.pipeline.axes == listed.pipeline.axes == ("coronal",) and one.pipeline.axis is None
    assert study_config_hash(one) == study_config_hash(listed)
    assert (
        parse_cohort(base + "pipeline: {axis: coronal, axes: [coronal]}\n", "c.yaml").pipeline == one.pipeline
    )
    # nothing given: the preset's axis; three axes differ from one
    assert parse_cohort(base, "c.yaml").pipeline.axes is None
    three = parse_cohort(base + "pipeline: {axes: [axial, coronal, sagittal]}\n", "c.yaml")
    assert study_config_hash(three) != study_config_hash(
        parse_cohort(base + "pipeline: {axes: [axial]}\n", "c.yaml")
    )
    assert (three.pipeline.axis_stride, three.pipeline.fusion) == (2, "mean")
    assert "not both" in _err(base + "pipeline: {axis: axial, axes: [axial, coronal]}\n")
    assert "distinct axes" in _err(base + "pipeline: {axes: [axial, axial]}\n")
    assert "distinct axes" in _err(base + "pipeline: {axes: []}\n")
    assert "pipeline.axes" in _err(base + "pipeline: {axes: [oblique]}\n")
    assert "pipeline.fusion" in _err(base + "pipeline: {fusion: median}\n")
    assert "pipeline.axis_stride" in _err(base + "pipeline: {axis_stride: 0}\n")


def test_top_volume_study_score_and_site_units_switch() -> None:
    base = "name: x\ninputs: {paths: [a.nii]}\n"
    cfg = parse_cohort(base + "output: {study_score: {method: top_volume, volume_ml: 2.5}}\n", "c.yaml")
    assert cfg.output.study_score.method == "top_volume" and cfg.output.study_score.volume_ml == 2.5
    assert "volume_ml" in _err(base + "output: {study_score: {method: top_volume, volume_ml: 0}}\n")
    assert parse_cohort(base, "c.yaml").model.site_normalised is True  # the default: maps in site units
    off = parse_cohort(base + "model: {site_normalised: false}\n", "c.yaml")
    assert study_config_hash(off) != study_config_hash(parse_cohort(base, "c.yaml"))
