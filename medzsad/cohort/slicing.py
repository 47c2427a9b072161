"""Volume -> model inputs and back, through the preset pipeline of :mod:`medzsad.transforms`.

The preset was chosen when the study was read (:mod:`medzsad.cohort.reading`: from the headers
when ``pipeline.preset`` is ``auto``, with the cohort's overrides); its
:func:`~medzsad.transforms.pipeline.prepare_slices` windows/normalises, reorients, cuts, skips
empty slices and builds CLIP input, and its inverse puts model maps back on the source grid.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch

from medzsad.cohort import transport
from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.reading import StudyRead
from medzsad.cohort.scorer import ModelInputSpec
from medzsad.cohort.stages import PreparedStudy
from medzsad.transforms.inverse import to_source_geometry
from medzsad.transforms.pipeline import prepare_slices

__all__ = ["prepare_study_slices"]

log = logging.getLogger(__name__)


def _shared_images(shape: tuple[int, ...]) -> torch.Tensor | None:
    """In a worker process: the model input in shared memory, so it reaches the main process uncopied."""
    arr = transport.shared_empty(shape, np.float32, transport.process_prefix())
    return torch.from_numpy(arr) if arr is not None else None


def prepare_study_slices(study: StudyInput, read: StudyRead, scorer: ModelInputSpec) -> PreparedStudy:
    """Cut, normalise, orient and resize the slices of the read volume for ``scorer``.

    Args:
        study: The study's input.
        read: The volume, its series summary and its preset.
        scorer: The model (only its ``image_size``, ``mean`` and ``std`` are used).
    """
    volume, preset = read.volume, read.preset
    prepared = prepare_slices(
        volume, preset, scorer.image_size, tuple(scorer.mean), tuple(scorer.std), allocate=_shared_images
    )
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
        series=read.series.with_axis(prepared.axis),
    )
