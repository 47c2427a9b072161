"""Read one study into a :class:`~medzsad.io.volume.Volume` through :mod:`medzsad.io`.

A volume file is loaded directly; a folder (or archive) is discovered, its series are filtered by
the pipeline's series rules (on top of the io defaults, which skip localizers and scouts) and the
chosen series is loaded with the io geometry checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medzsad.cohort.inputs import StudyInput
from medzsad.config import PipelineConfig
from medzsad.errors import InputError
from medzsad.io.volume import Volume

__all__ = ["read_study"]


def _read_with_io(study: StudyInput, pipeline: PipelineConfig) -> tuple[Volume, dict[str, Any]]:
    """Read through :mod:`medzsad.io`: discover, select the series by the pipeline rules, load."""
    from medzsad.io.discovery import discover
    from medzsad.io.readers import load_volume
    from medzsad.io.series_selection import SeriesRules as IoSeriesRules
    from medzsad.io.series_selection import select_series

    p = Path(study.path)
    if p.is_file() and not p.name.lower().endswith(".zip") and p.name.upper() != "DICOMDIR":
        v = load_volume(p)
        return v, {
            "series_uid": v.source.series_uid,
            "description": "",
            "modality": v.modality,
            "instances": 1,
        }
    found = [s for s in discover(p) if not study.study_uid or s.study_uid == study.study_uid]
    if len(found) != 1:
        raise InputError(
            f"{p}: holds {len(found)} studies; list them separately (a manifest or one folder each)"
        )
    rules = IoSeriesRules()
    if pipeline.series is not None:
        rules = rules.updated(pipeline.series)
    selection = select_series(found[0], rules)
    chosen = selection.require(str(p))
    v = load_volume(chosen)
    info = {
        "series_uid": v.source.series_uid,
        "description": v.source.series_description,
        "modality": v.modality,
        "instances": len(v.source.paths),
        "why": selection.reason,
        "candidates": len(found[0].series),
    }
    return v, info


def read_study(study: StudyInput, pipeline: PipelineConfig) -> tuple[Volume, dict[str, Any]]:
    """Read a study through :mod:`medzsad.io` (discovery, series selection, geometry-checked loaders).

    Raises:
        InputError: Missing, unreadable or unusable input.
    """
    p = Path(study.path)
    if not p.exists():
        raise InputError(f"{p}: study input does not exist")
    return _read_with_io(study, pipeline)
