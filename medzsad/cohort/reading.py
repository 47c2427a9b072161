"""Read one study into a :class:`~medzsad.io.volume.Volume` through :mod:`medzsad.io`.

A volume file is loaded directly; a folder (or archive) is discovered, its series are filtered by
the pipeline's series rules (on top of the io defaults, which skip localizers and scouts) and the
chosen series is loaded with the io geometry checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medzsad.cohort.inputs import StudyInput
from medzsad.config import PipelineConfig
from medzsad.errors import InputError, SourceChangedError
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
    _check_unchanged(study)
    discovery = discover(p)
    found = [s for s in discovery if not study.study_uid or s.study_uid == study.study_uid]
    if not found and discovery.skipped:
        first = discovery.skipped[0]
        raise InputError(
            f"{p}: holds no usable study; {len(discovery.skipped)} file(s) skipped, e.g. {first.path}: "
            f"{first.reason}"
        )
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


def _check_unchanged(study: StudyInput) -> None:
    """Files discovery listed for the study must still be there: never score what remains."""
    if not study.files:
        return
    gone = [f for f in study.files if not os.path.exists(f)]
    if gone:
        raise SourceChangedError(
            f"{gone[0]}: {len(gone)} of the {len(study.files)} files of the study no longer exist "
            "(deleted or moved since the run started); restore them or rerun to rediscover the folder"
        )


def read_study(study: StudyInput, pipeline: PipelineConfig) -> tuple[Volume, dict[str, Any]]:
    """Read a study through :mod:`medzsad.io` (discovery, series selection, geometry-checked loaders).

    Raises:
        InputError: Missing, unreadable or unusable input.
    """
    p = Path(study.path)
    if not p.exists():
        raise InputError(f"{p}: study input does not exist")
    return _read_with_io(study, pipeline)
