"""Read one study: discover -> choose the preset from the headers -> select the series -> load.

The order matters: a preset's ``series:`` rules (``pipelines/*.yaml``) decide which series of a
DICOM study is analysed, so the preset is chosen first, from the headers alone:

1. Discover the study's series (:func:`medzsad.io.discovery.discover`).
2. With ``pipeline.preset: auto``, take the modality, BodyPartExamined and SeriesDescription of the
   series :mod:`medzsad.io`'s default rules (plus the cohort's ``pipeline.series`` overrides) would
   pick, and name a preset from them (:func:`~medzsad.transforms.preset.auto_preset_name`);
   otherwise load the named preset. The cohort's overrides are applied to the preset.
3. Select the series with the preset's rules plus the cohort's overrides, and load it.

A volume file (NIfTI, NRRD, a 2D image) is one series: it is loaded, and ``auto`` decides from its
header (modality) or, without one, from its data (a 2D image is a radiograph, air at about -1000
means CT in HU, anything else is treated like MR).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.series_summary import SeriesSummary
from medzsad.config import PipelineConfig
from medzsad.errors import InputError
from medzsad.io.series_ref import SeriesRef
from medzsad.io.series_selection import SeriesRules, select_series
from medzsad.io.volume import Volume
from medzsad.transforms.preset import Preset, auto_preset_name, load_preset

__all__ = ["StudyRead", "read_study", "choose_preset", "guess_modality"]

#: Below this minimum value an unlabelled volume is taken to be in Hounsfield units (CT).
_HU_MIN_THRESHOLD = -500.0


@dataclass(frozen=True)
class StudyRead:
    """A study read from disk, with the preset chosen for it.

    Attributes:
        volume: The loaded series.
        series: What was chosen and why.
        preset: The preset (cohort overrides applied) that selected the series and prepares it.
    """

    volume: Volume
    series: SeriesSummary
    preset: Preset


def choose_preset(
    pipeline: PipelineConfig, modality: str = "", body_part: str = "", description: str = ""
) -> Preset:
    """The preset of ``pipeline`` (``auto``: named from the headers) with the cohort's overrides.

    Args:
        pipeline: The cohort's ``pipeline`` section.
        modality: Modality of the scan (``auto`` only).
        body_part: BodyPartExamined (``auto`` only).
        description: SeriesDescription (``auto`` only).

    Raises:
        ConfigError: Unknown preset name or invalid override.
    """
    name = pipeline.preset
    if name == "auto":
        name = auto_preset_name(modality, body_part, description)
    return load_preset(name).updated(
        window=pipeline.window,
        axis=pipeline.axis,
        series=pipeline.series,
        skip_empty_slices=pipeline.skip_empty_slices,
    )


def guess_modality(volume: Volume) -> str:
    """The volume's modality, or a guess from its data when the file has none (NIfTI, NRRD)."""
    if volume.modality:
        return volume.modality.upper()
    if volume.shape_ijk[2] == 1:
        return "DX"
    if volume.data.size and float(np.nanmin(volume.data)) <= _HU_MIN_THRESHOLD:
        return "CT"
    return "MR"


def _read_file(path: Path, pipeline: PipelineConfig) -> StudyRead:
    from medzsad.io.readers import load_volume

    v = load_volume(path)
    preset = choose_preset(pipeline, guess_modality(v), "", v.source.series_description)
    summary = SeriesSummary(
        series_uid=v.source.series_uid,
        description="",
        modality=v.modality,
        body_part="",
        instances=1,
        preset=preset.name,
    )
    return StudyRead(v, summary, preset)


def _cohort_rules(pipeline: PipelineConfig) -> SeriesRules:
    """:mod:`medzsad.io`'s default rules with the cohort's ``pipeline.series`` overrides."""
    return SeriesRules() if pipeline.series is None else SeriesRules().updated(pipeline.series)


def _header_series(series: list[SeriesRef], pipeline: PipelineConfig) -> SeriesRef | None:
    """The series whose headers name the ``auto`` preset: io's default pick, else the first image."""
    chosen = select_series(series, _cohort_rules(pipeline)).chosen
    return chosen if chosen is not None else next((s for s in series if s.is_image), None)


def _read_folder(study: StudyInput, path: Path, pipeline: PipelineConfig) -> StudyRead:
    from medzsad.io.discovery import discover
    from medzsad.io.readers import load_volume

    found = [s for s in discover(path) if not study.study_uid or s.study_uid == study.study_uid]
    if len(found) != 1:
        raise InputError(
            f"{path}: holds {len(found)} studies; list them separately (a manifest or one folder each)"
        )
    series = list(found[0].series)
    header = _header_series(series, pipeline)
    if pipeline.preset != "auto" or (header is not None and header.modality):
        h = header or SeriesRef("", "", "dicom", ())
        preset: Preset | None = choose_preset(pipeline, h.modality, h.body_part, h.description)
    else:
        preset = None  # no modality in the headers (volume files): decided from the data below
    rules = preset.series if preset is not None else _cohort_rules(pipeline)
    selection = select_series(series, rules)
    chosen = selection.require(str(path))
    v = load_volume(chosen)
    if preset is None:
        preset = choose_preset(pipeline, guess_modality(v), chosen.body_part, chosen.description)
    summary = SeriesSummary(
        series_uid=v.source.series_uid,
        description=v.source.series_description,
        modality=v.modality,
        body_part=chosen.body_part,
        instances=len(v.source.paths),
        preset=preset.name,
        why=selection.reason,
        candidates=len(series),
    )
    return StudyRead(v, summary, preset)


def read_study(study: StudyInput, pipeline: PipelineConfig) -> StudyRead:
    """Read a study: discover, choose the preset, select the series by its rules, load.

    Raises:
        InputError: Missing, unreadable or unusable input (no series passes the rules).
        ConfigError: Unknown preset or invalid override.
    """
    p = Path(study.path)
    if not p.exists():
        raise InputError(f"{p}: study input does not exist")
    if p.is_file() and not p.name.lower().endswith(".zip") and p.name.upper() != "DICOMDIR":
        return _read_file(p, pipeline)
    return _read_folder(study, p, pipeline)
