"""The whole cohort file and the hash of the settings that change a study's outputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from medzsad.config._base import _Section
from medzsad.config.executor import ExecutorConfig
from medzsad.config.inputs import InputsConfig
from medzsad.config.model import ModelConfig
from medzsad.config.output import OutputConfig
from medzsad.config.pipeline import PipelineConfig
from medzsad.config.profile import ProfileConfig


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
    executor: ExecutorConfig = ExecutorConfig()
    profile: ProfileConfig | None = None
    base_dir: str = "."
    source_file: str = "<memory>"

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_shorthand(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v

    def resolve(self, path: str) -> Path:
        """A path from the cohort file, made absolute against :attr:`base_dir` (``~`` expanded)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

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
        from medzsad.config.yaml_loading import validate_cohort_data  # cycle: the loader builds us

        return validate_cohort_data(data, self.source_file, {})


def effective_model_settings(config: CohortConfig) -> dict[str, Any]:
    """The ``model`` section as JSON with effective values (an override, else the architecture's).

    ``device`` and ``batch_size`` are left out: they never change a study's outputs.
    """
    from medzsad.weights.architecture import effective_settings

    m = config.model
    model = m.model_dump(mode="json", exclude={"device", "batch_size"})
    eff = effective_settings(
        prompts=m.prompt_weights,
        backbone=m.backbone,
        image_size=m.image_size,
        feature_layers=m.feature_layers,
        dpam_layers=m.dpam_layers,
        tiny=m.tiny,
    )
    model.update(
        backbone=eff.backbone,
        image_size=eff.image_size,
        feature_layers=list(eff.feature_layers) if eff.feature_layers is not None else None,
        dpam_layers=eff.dpam_layers,
    )
    return model


def study_config_hash(config: CohortConfig) -> str:
    """sha256 of the settings that change a study's outputs (not device, batch size, paths, name).

    Model settings enter with their effective values (an override, else the architecture JSON's),
    so ``image_size: 518`` and no ``image_size`` give the same hash when the architecture's is 518.
    """
    data = config.model_dump(mode="json")
    model = effective_model_settings(config)
    # output.flag only changes the cohort tables (p-values are computed when they are written);
    # where outputs are sent (output.push) does not change them
    output = {k: v for k, v in data["output"].items() if k not in ("dir", "flag", "push")}
    payload = json.dumps({"pipeline": data["pipeline"], "model": model, "output": output}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
