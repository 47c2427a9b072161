"""Volume -> model inputs and back, through the preset pipeline of :mod:`medzsad.transforms`.

The cohort's ``pipeline`` section names a preset from ``pipelines/`` (or ``auto``: chosen from the
scan's modality, body part and description) and overrides some of its fields; the preset's
:func:`~medzsad.transforms.pipeline.prepare_slices` windows/normalises, reorients, cuts, skips
empty slices and builds CLIP input, and its inverse puts model maps back on the source grid.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.scorer import ModelInputSpec
from medzsad.cohort.stages import PreparedStudy
from medzsad.config import PipelineConfig
from medzsad.io.volume import Volume
from medzsad.transforms.inverse import to_source_geometry
from medzsad.transforms.pipeline import prepare_slices
from medzsad.transforms.preset import Preset, auto_preset_name, load_preset

__all__ = ["choose_preset", "prepare_study_slices"]

log = logging.getLogger(__name__)

#: Below this minimum value an unlabelled volume is taken to be in Hounsfield units (CT).
_HU_MIN_THRESHOLD = -500.0


def _auto_name(volume: Volume, series: dict[str, Any]) -> str:
    modality = (volume.modality or series.get("modality") or "").upper()
    if not modality:
        # NIfTI/NRRD carry no modality: a 2D image is a radiograph, air at ~-1000 means CT in HU,
        # anything else is treated like MR (percentile normalisation).
        if volume.shape_ijk[2] == 1:
            modality = "DX"
        elif volume.data.size and float(np.nanmin(volume.data)) <= _HU_MIN_THRESHOLD:
            modality = "CT"
        else:
            modality = "MR"
    return auto_preset_name(modality, str(series.get("body_part", "")), volume.source.series_description)


def choose_preset(volume: Volume, series: dict[str, Any], pipeline: PipelineConfig) -> Preset:
    """The preset for this study with the cohort's overrides applied.

    Raises:
        ConfigError: Unknown preset name or invalid override.
    """
    name = _auto_name(volume, series) if pipeline.preset == "auto" else pipeline.preset
    preset = load_preset(name)
    return preset.updated(
        window=pipeline.window,
        axis=pipeline.axis,
        series=pipeline.series,
        skip_empty_slices=pipeline.skip_empty_slices,
    )


def prepare_study_slices(
    study: StudyInput,
    volume: Volume,
    series: dict[str, Any],
    pipeline: PipelineConfig,
    scorer: ModelInputSpec,
) -> PreparedStudy:
    """Cut, normalise, orient and resize the slices of ``volume`` for ``scorer``.

    Raises:
        ConfigError: Unknown preset or invalid override.
    """
    preset = choose_preset(volume, series, pipeline)
    prepared = prepare_slices(volume, preset, scorer.image_size, tuple(scorer.mean), tuple(scorer.std))
    log.debug("preset %s, %d of %d slices scored", preset.name, len(prepared.slice_index), prepared.n_slices)
    return PreparedStudy(
        study=study,
        volume=volume,
        images=prepared.images,
        slice_index=np.asarray(prepared.slice_index),
        n_slices=prepared.n_slices,
        skipped=np.asarray(prepared.skipped),
        slice_axis=prepared.source_axis,
        # a partial, not the bound method: it pickles without the images (worker -> main process)
        to_source=functools.partial(to_source_geometry, info=prepared.inverse),
        window=prepared.window,
        series={**series, "preset": preset.name, "axis": prepared.axis},
    )
