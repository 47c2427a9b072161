"""Typed cohort file schema: YAML -> frozen pydantic models, unknown keys rejected with their line.

A cohort file has six top-level sections (``name``, ``inputs``, ``pipeline``, ``model``,
``output``, ``executor``); every key is documented in ``docs/cohort.md``. Relative paths resolve
against the directory of the cohort file, except the default output directory
``reports/<name>/``, which is relative to the current directory.

Errors are one line naming the file and the line of the offending key, e.g.
``cohort.yaml:12: unknown key 'thresold' in output (allowed: dir, outputs, threshold, ...)``.
"""

from __future__ import annotations

from medzsad.config.cohort import CohortConfig
from medzsad.config.executor import ExecutorConfig, LocalExecutorConfig, RayExecutorConfig
from medzsad.config.inputs import InputsConfig
from medzsad.config.model import ModelConfig
from medzsad.config.output import (
    DEFAULT_OUTPUTS,
    FORMAT_OUTPUTS,
    FlagRule,
    OutputConfig,
    OutputKind,
    StudyScoreRule,
    ThresholdRule,
)
from medzsad.config.pipeline import PipelineConfig, SeriesOverrides, WindowConfig
from medzsad.config.profile import ProfileConfig
from medzsad.config.yaml_loading import load_cohort, parse_cohort

__all__ = [
    "CohortConfig",
    "InputsConfig",
    "PipelineConfig",
    "SeriesOverrides",
    "WindowConfig",
    "ModelConfig",
    "OutputConfig",
    "ThresholdRule",
    "FlagRule",
    "ProfileConfig",
    "StudyScoreRule",
    "ExecutorConfig",
    "LocalExecutorConfig",
    "RayExecutorConfig",
    "OutputKind",
    "DEFAULT_OUTPUTS",
    "FORMAT_OUTPUTS",
    "load_cohort",
    "parse_cohort",
]
