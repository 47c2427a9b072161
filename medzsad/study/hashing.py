"""The study config hash: the settings that change a study's files, so a rerun can skip a done study."""

from __future__ import annotations

import hashlib
import json

from medzsad.config import CohortConfig
from medzsad.transforms.pipeline_settings import effective_pipeline
from medzsad.weights.architecture import effective_model_settings

__all__ = ["study_config_hash"]

#: ``output`` keys that never change a study's files: where they go (``dir``), the cohort tables'
#: p-values (``flag``: computed when the tables are written), where they are sent (``push``) and
#: how ids are shown (``show_ids``: a display switch must never recompute finished studies).
_NOT_STUDY_OUTPUT = ("dir", "flag", "push", "show_ids")


def study_config_hash(config: CohortConfig) -> str:
    """sha256 of the settings that change a study's outputs (not device, batch size, paths, name).

    Model settings enter with their effective values (an override, else the architecture JSON's),
    so ``image_size: 518`` and no ``image_size`` give the same hash when the architecture's is 518;
    ``output.formats`` and the equal ``output.outputs`` are one canonical form by then; the pipeline
    enters as its effective preprocessing (``axes: [axial]`` is the presets' own axis).
    """
    data = config.model_dump(mode="json")
    model = effective_model_settings(config.model)
    output = {k: v for k, v in data["output"].items() if k not in _NOT_STUDY_OUTPUT}
    pipeline = effective_pipeline(config.pipeline)  # a default written out is the default
    payload = json.dumps({"pipeline": pipeline, "model": model, "output": output}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
