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
means CT in HU, anything else is treated like MR). The steps are
:func:`medzsad.transforms.preset_reading.read_with_preset`, shared with training and evaluation on
volumes; this module adds the cohort's settings and the typed series summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medzsad.config import PipelineConfig
from medzsad.errors import InputError, SourceChangedError
from medzsad.io.dicom_common import LoadPolicy
from medzsad.io.series_selection import SeriesRules
from medzsad.io.volume import Volume
from medzsad.study.types import SeriesSummary, StudyInput
from medzsad.transforms.pipeline_settings import with_overrides
from medzsad.transforms.preset import Preset, auto_preset_name, load_preset
from medzsad.transforms.preset_reading import read_with_preset

__all__ = ["StudyRead", "read_study", "choose_preset", "GAP_POLICY"]

#: ``pipeline.on_gap`` -> io's policy of missing slices and irregular spacing.
GAP_POLICY = {"warn": LoadPolicy.WARN, "fail": LoadPolicy.ERROR, "resample": LoadPolicy.RESAMPLE}


@dataclass(frozen=True)
class StudyRead:
    """A study read from disk, with the preset chosen for it.

    Attributes:
        volume: The loaded series.
        series: What was chosen and why.
        preset: The preset (cohort overrides applied) that selected the series and prepares it;
            its axis is the study's primary axis.
        extra_axes: Further axes to score (``pipeline.axes`` after the first).
        axis_stride: Slice stride of the extra axes (``pipeline.axis_stride``).
    """

    volume: Volume
    series: SeriesSummary
    preset: Preset
    extra_axes: tuple[str, ...] = ()
    axis_stride: int = 1


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
    return with_overrides(load_preset(name), pipeline)


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


def read_study(study: StudyInput, pipeline: PipelineConfig) -> StudyRead:
    """Read a study: discover, choose the preset, select the series by its rules, load.

    Raises:
        InputError: Missing, unreadable or unusable input (no series passes the rules), or a
            slice gap with ``pipeline.on_gap: fail`` (``DicomError`` naming the gap).
        ConfigError: Unknown preset or invalid override.
    """
    p = Path(study.path)
    if not p.exists():
        raise InputError(f"{p}: study input does not exist")
    if p.is_dir() or p.suffix.lower() == ".zip" or p.name.upper() == "DICOMDIR":
        _check_unchanged(study)
    base = SeriesRules() if pipeline.series is None else SeriesRules().updated(pipeline.series)
    read = read_with_preset(
        p,
        lambda modality, body_part, description: choose_preset(pipeline, modality, body_part, description),
        auto=pipeline.preset == "auto",
        base_rules=base,
        study_uid=study.study_uid or "",
        gaps=GAP_POLICY[pipeline.on_gap],
    )
    v = read.volume
    summary = SeriesSummary(
        series_uid=v.source.series_uid,
        description=v.source.series_description if read.why else "",
        # a NIfTI has no modality: the one its preset was chosen for (auto: from the data) stands in
        modality=v.modality or (read.preset.modality[0] if read.preset.modality else ""),
        body_part=read.body_part,
        instances=len(v.source.paths),
        preset=read.preset.name,
        why=read.why,
        candidates=read.candidates,
        fallback=read.fallback,
    )
    extra = tuple(a for a in (pipeline.axes or ())[1:])
    return StudyRead(v, summary, read.preset, extra, pipeline.axis_stride)
