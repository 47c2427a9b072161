"""The effective preprocessing of a ``pipeline:`` section: what it does, not how it is written.

``pipeline:`` overrides a preset's values (``None`` keeps the preset's). Two sections that preprocess
every study alike must hash alike, whether a default is written out or left absent:
``axes: [axial]`` and ``skip_empty_slices: true`` are the presets' own values, so a cohort that
spells them out is the same cohort as one that does not (a profile built with one is valid for
the other, and a done study is not recomputed). :func:`effective_pipeline` is that canonical form:
the presets the section can use, each with the section's overrides applied, plus the settings
that act after the preset (extra axes, their stride and fusion, the gap policy).
"""

from __future__ import annotations

from typing import Any

from medzsad.config import PipelineConfig
from medzsad.io.series_selection import SeriesRules
from medzsad.preset_names import list_presets
from medzsad.transforms.preset import Preset, load_preset

__all__ = ["effective_pipeline", "with_overrides"]


def with_overrides(preset: Preset, pipeline: PipelineConfig) -> Preset:
    """``preset`` with the section's overrides (window, first axis, series rules, empty slices).

    Raises:
        ConfigError: An invalid override.
    """
    return preset.updated(
        window=pipeline.window,
        axis=pipeline.axes[0] if pipeline.axes else None,
        series=pipeline.series,
        skip_empty_slices=pipeline.skip_empty_slices,
    )


def effective_pipeline(pipeline: PipelineConfig) -> dict[str, Any]:
    """JSON-ready canonical form of ``pipeline`` (see the module docstring), for hashes.

    Raises:
        ConfigError: The preset does not exist, or an override is invalid for one it can use.
    """
    auto = pipeline.preset == "auto"
    names = list_presets() if auto else [pipeline.preset]
    extra = list(pipeline.axes[1:]) if pipeline.axes else []
    out: dict[str, Any] = {
        "preset": "auto" if auto else "named",
        "presets": {
            p.name: with_overrides(p, pipeline).model_dump(mode="json", exclude={"description"})
            for p in (load_preset(n) for n in names)
        },
        "extra_axes": extra,
        "on_gap": pipeline.on_gap,
    }
    if auto:  # the rules whose pick names the preset (study.reading.read_study)
        base = SeriesRules() if pipeline.series is None else SeriesRules().updated(pipeline.series)
        out["auto_rules"] = base.model_dump(mode="json")
    if extra:  # one axis is scored on every slice and never fused
        out["axis_stride"] = pipeline.axis_stride
        out["fusion"] = pipeline.fusion
    return out
