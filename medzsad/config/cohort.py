"""The whole cohort file as one frozen model, and its validation from parsed data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from medzsad.config._base import _Section
from medzsad.config.executor import ExecutorConfig, LocalExecutorConfig, executor_shorthand
from medzsad.config.inputs import InputsConfig
from medzsad.config.model import ModelConfig
from medzsad.config.output import OutputConfig
from medzsad.config.pipeline import PipelineConfig
from medzsad.config.profile import ProfileConfig
from medzsad.config.validation import format_error
from medzsad.errors import ConfigError

#: ``source_file`` of the in-memory cohort of ``medzsad run -i PATH`` starts with this.
COMMAND_LINE_SOURCE = "-i "


class CohortConfig(_Section):
    """A whole cohort file.

    Attributes:
        name: Cohort name, ``[A-Za-z0-9._-]``; the default output dir is ``reports/<name>/``.
        base_dir: Directory of the cohort file (set by the loader; relative paths resolve here).
        source_file: The cohort file path (set by the loader; used in error messages).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    inputs: InputsConfig
    pipeline: PipelineConfig = PipelineConfig()
    model: ModelConfig = ModelConfig()
    output: OutputConfig = OutputConfig()
    executor: ExecutorConfig = LocalExecutorConfig()
    profile: ProfileConfig | None = None
    base_dir: str = "."
    source_file: str = "<memory>"

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_shorthand(cls, v: Any) -> Any:
        return executor_shorthand(v)

    def resolve(self, path: str) -> Path:
        """A path from the cohort file, made absolute against :attr:`base_dir` (``~`` expanded)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    @property
    def from_command_line(self) -> bool:
        """The cohort of one study given with ``medzsad run -i PATH`` (its path is the user's own)."""
        return self.source_file.startswith(COMMAND_LINE_SOURCE)

    @property
    def out_dir(self) -> Path:
        """The output directory: ``output.dir`` (relative to the cohort file) or ``reports/<name>``."""
        if self.output.dir is None:
            return Path("reports") / self.name
        return self.resolve(self.output.dir)

    def with_overrides(self, **changes: Any) -> CohortConfig:
        """A validated copy with dotted keys replaced, e.g. ``{"model.device": "cpu"}``."""
        data = self.model_dump(mode="json")
        for key, value in changes.items():
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        return validate_cohort_data(data, self.source_file, {})


def validate_cohort_data(data: Any, source: str, lines: dict[tuple[Any, ...], int]) -> CohortConfig:
    """Validate parsed YAML (a dict) into a :class:`CohortConfig`; ``lines`` maps key paths to lines."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: a cohort file must be a YAML mapping with name, inputs, ... (see docs/cohort.md)"
        )
    try:
        return CohortConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_error(e.errors()[0], source, lines, CohortConfig)) from e
