"""Loading a study: read (discover, preset, series) -> cut, normalise and orient slices for the model.

:class:`StudyLoader` is the seam; :func:`default_loader` reads with :mod:`medzsad.study.reading`
and prepares slices with the preset's transforms (:func:`medzsad.transforms.pipeline.prepare_slices`):
window/normalise, reorient, cut, skip empty slices, build CLIP input. The inverse that puts model
maps back on the source grid travels with the study (:attr:`PreparedStudy.to_source`).

A loader may run in another process or machine, so it is picklable (a module-level function) and
sees only the model's input spec (:class:`InputSpec`), never the model or the ledger. Where the
``(N, 3, S, S)`` model input is allocated is the executor's business: it passes ``allocate``
(e.g. shared memory), the study code only calls it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from medzsad.config import CohortConfig
from medzsad.errors import PacsError
from medzsad.references.positions import body_coordinates
from medzsad.study.reading import StudyRead, read_study
from medzsad.study.types import PreparedStudy, StudyInput
from medzsad.transforms.inverse import to_source_geometry
from medzsad.transforms.pipeline import prepare_slices

__all__ = ["ModelInputSpec", "InputSpec", "Allocate", "StudyLoader", "default_loader", "prepare_study_slices"]

log = logging.getLogger(__name__)

#: ``shape -> (N, 3, S, S) float32 tensor`` to fill, or ``None`` for an ordinary allocation.
Allocate = Callable[[tuple[int, ...]], "torch.Tensor | None"]


class ModelInputSpec(Protocol):
    """What preprocessing needs to know of the model: input side and CLIP normalisation."""

    @property
    def image_size(self) -> int:
        """Input side ``S``."""
        ...

    @property
    def mean(self) -> tuple[float, float, float]:
        """CLIP normalisation mean."""
        ...

    @property
    def std(self) -> tuple[float, float, float]:
        """CLIP normalisation std."""
        ...


@dataclass(frozen=True)
class InputSpec:
    """A picklable :class:`ModelInputSpec` (sent to loading processes instead of the model)."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, scorer: ModelInputSpec) -> InputSpec:
        """The input spec of ``scorer``."""
        return cls(int(scorer.image_size), tuple(scorer.mean), tuple(scorer.std))  # type: ignore[arg-type]


class StudyLoader(Protocol):
    """Loads and preprocesses one study (CPU work, run ahead of scoring)."""

    def __call__(
        self, study: StudyInput, config: CohortConfig, spec: ModelInputSpec, allocate: Allocate | None = None
    ) -> PreparedStudy:
        """Return the study ready for :mod:`medzsad.study.scoring`."""
        ...


def default_loader(
    study: StudyInput, config: CohortConfig, spec: ModelInputSpec, allocate: Allocate | None = None
) -> PreparedStudy:
    """Read the study's volume and cut it into normalised slices for the model ``spec`` describes.

    Raises:
        InputError: The study cannot be read or has no usable series.
        PacsError: The study's pull from a PACS failed (its folder is incomplete).
        GeometryError: The scan's geometry cannot give body coordinates (degenerate affine).
    """
    if study.error:
        raise PacsError(study.error, study_uid=study.study_uid)
    t0 = time.perf_counter()
    read = read_study(study, config.pipeline)
    t1 = time.perf_counter()
    prepared = prepare_study_slices(study, read, spec, allocate)
    t2 = time.perf_counter()
    prepared.timings_s.update(read=t1 - t0, preprocess=t2 - t1)
    return prepared


def prepare_study_slices(
    study: StudyInput, read: StudyRead, spec: ModelInputSpec, allocate: Allocate | None = None
) -> PreparedStudy:
    """Cut, normalise, orient and resize the slices of the read volume for the model.

    Args:
        study: The study's input.
        read: The volume, its series summary and its preset.
        spec: The model's input side and normalisation.
        allocate: Where the model input is allocated (default: an ordinary tensor).
    """
    volume, preset = read.volume, read.preset
    prepared = prepare_slices(
        volume, preset, spec.image_size, tuple(spec.mean), tuple(spec.std), allocate=allocate
    )
    log.debug("preset %s, %d of %d slices scored", preset.name, len(prepared.slice_index), prepared.n_slices)
    slice_index = np.asarray(prepared.slice_index)
    return PreparedStudy(
        study=study,
        volume=volume,
        images=prepared.images,
        positions=body_coordinates(volume.affine_ras, prepared.source_axis, slice_index),
        slice_index=slice_index,
        n_slices=prepared.n_slices,
        skipped=np.asarray(prepared.skipped),
        slice_axis=prepared.source_axis,
        # a partial, not the bound method: it pickles without the images (worker -> main process)
        to_source=functools.partial(to_source_geometry, info=prepared.inverse),
        window=prepared.window,
        series=read.series.with_axis(prepared.axis),
    )
