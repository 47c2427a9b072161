"""Loading a study: read (discover, preset, series) -> cut, normalise and orient slices for the model.

:class:`StudyLoader` is the seam; :func:`default_loader` reads with :mod:`medzsad.study.reading`
and prepares slices with the preset's transforms (:func:`medzsad.transforms.pipeline.prepare_slices`):
window/normalise, reorient, cut, skip empty slices, build CLIP input. The inverse that puts model
maps back on the source grid travels with the study (:attr:`PreparedStudy.to_source`).

A loader may run in another process or machine, so it is picklable (a module-level function) and
sees only the model's input spec (:class:`InputSpec`), never the model or the ledger. Where the
``(N, 1, S, S)`` model-size slices are allocated is the executor's business: it passes ``allocate``
(e.g. shared memory), the study code only calls it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch

from medzsad.config import CohortConfig
from medzsad.errors import PacsError
from medzsad.io.volume import Volume
from medzsad.references.positions import body_coordinates
from medzsad.study.reading import StudyRead, read_study
from medzsad.study.types import AxisSlices, PreparedStudy, StudyInput
from medzsad.transforms.inverse import to_source_geometry
from medzsad.transforms.pipeline import prepare_axes

__all__ = ["ModelInputSpec", "InputSpec", "Allocate", "StudyLoader", "default_loader", "prepare_study_slices"]

log = logging.getLogger(__name__)

#: ``shape -> float32 tensor`` of that shape to fill (the model input ``(N, 1, S, S)`` and the
#: scan), or ``None`` for an ordinary allocation. A worker process allocates in shared memory.
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
    read = replace(read, volume=_allocated(read.volume, allocate))
    t1 = time.perf_counter()
    prepared = prepare_study_slices(study, read, spec, allocate)
    t2 = time.perf_counter()
    prepared.timings_s.update(read=t1 - t0, preprocess=t2 - t1)
    return prepared


def _allocated(volume: Volume, allocate: Allocate | None) -> Volume:
    """The scan copied into ``allocate``'s memory, in the same memory order (same strides).

    The scan goes on with the study (to the main process, then the writer). Copied into a
    worker's shared memory now, before the slices are cut, it is later sent by name; copied
    when the study is sent, the copy would sit on top of the loader's peak.
    """
    data = volume.data
    fortran = data.flags.f_contiguous and not data.flags.c_contiguous  # e.g. a DICOM stack (K, J, I).T
    if allocate is None or data.dtype != np.float32 or not (data.flags.c_contiguous or fortran):
        return volume
    made = allocate(data.shape[::-1] if fortran else data.shape)
    if made is None:
        return volume
    out = made.numpy().T if fortran else made.numpy()
    np.copyto(out, data)
    return replace(volume, data=out)


def prepare_study_slices(
    study: StudyInput, read: StudyRead, spec: ModelInputSpec, allocate: Allocate | None = None
) -> PreparedStudy:
    """Cut, normalise, orient and resize the slices of the read volume for the model, on every axis.

    The preset's axis comes first (every non-empty slice), then ``read.extra_axes`` (every
    ``read.axis_stride``-th); each axis's slices carry their body coordinate along that axis.

    Args:
        study: The study's input.
        read: The volume, its series summary, its preset and the axes to score.
        spec: The model's input side and normalisation.
        allocate: Where the model input is allocated (default: an ordinary tensor).
    """
    volume, preset = read.volume, read.preset
    prepared = prepare_axes(
        volume,
        preset,
        spec.image_size,
        tuple(spec.mean),
        tuple(spec.std),
        extra_axes=read.extra_axes,
        stride=read.axis_stride,
        allocate=allocate,
        channels=1,  # a third of the memory; a batch becomes model input when it is scored
    )
    axes: list[AxisSlices] = []
    positions: list[np.ndarray] = []
    start = 0
    for cut in prepared.axes:
        slice_index = np.asarray(cut.slice_index)
        log.debug(
            "preset %s, %s: %d of %d slices scored", preset.name, cut.axis, len(slice_index), cut.n_slices
        )
        axes.append(
            AxisSlices(
                axis=cut.axis,
                slice_axis=cut.source_axis,
                slice_index=slice_index,
                n_slices=cut.n_slices,
                skipped=np.asarray(cut.skipped),
                covered=cut.covered,
                # a partial, not the bound method: it pickles without the images (worker -> main)
                to_source=functools.partial(to_source_geometry, info=cut.inverse),
                start=start,
            )
        )
        positions.append(body_coordinates(volume.affine_ras, cut.source_axis, slice_index))
        start += len(slice_index)
    return PreparedStudy(
        study=study,
        volume=volume,
        images=prepared.images,
        positions=np.concatenate(positions).astype(np.float32, copy=False),
        axes=tuple(axes),
        window=prepared.axes[0].window,
        series=read.series.with_axis("+".join(a.axis for a in axes)),
    )
