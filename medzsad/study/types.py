"""The types of one study's way through medzsad: input, loaded study, model outputs, outcome.

A study is loaded (:class:`PreparedStudy`), scored (:class:`Scored`), finished (post-processed,
calibrated, written) and ends as a :class:`StudyFinish`. Executors move these values between
processes and machines, so every type here pickles.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from medzsad.io.sources import split_member
from medzsad.io.volume import Volume

if TYPE_CHECKING:  # torch is imported where a study is loaded, not when a run starts (launch)
    import torch

__all__ = [
    "AXES",
    "StudyInput",
    "StudyJob",
    "SeriesSummary",
    "AxisSlices",
    "PreparedStudy",
    "Scored",
    "Loaded",
    "Ready",
    "Failed",
    "FinishPlace",
    "StudyFinish",
]

P_co = TypeVar("P_co", covariant=True)
P = TypeVar("P")

#: Plane names by axis code: the code is column 1 of the slice positions every batch carries.
AXES = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class StudyInput:
    """One study to process.

    Attributes:
        study_id: Id from the manifest, the folder name, or the file name.
        path: The study's file or folder (absolute).
        files: The files that make up the study (for the input hash); a folder's files when empty.
        label: 0 normal / 1 abnormal when known (manifest ``label``), else ``None``.
        mask: Ground-truth mask file (manifest ``mask``), else ``None``.
        study_uid: StudyInstanceUID when discovery found one (selects the study in a shared folder).
        error: Why the study could not be fetched from a PACS (the study then fails with it).
    """

    study_id: str
    path: str
    files: tuple[str, ...] = ()
    label: int | None = None
    mask: str | None = None
    study_uid: str = ""
    error: str = ""

    @property
    def source(self) -> str:
        """Where the study's own files are, as the cohort tables name it.

        ``path``; for a discovered study (its ``files`` listed), the deepest folder that holds all
        of them, a ``.zip`` archive counting as a folder: each study of ``run -i export/``, of a
        DICOMDIR or of an archive names its own place.
        """
        places = []
        for f in self.files:
            archive, member = split_member(f)
            places.append(archive if member is not None else os.path.dirname(f))
        try:
            return os.path.commonpath(places) if places else self.path
        except ValueError:  # absolute and relative names mixed: no common folder
            return self.path


@dataclass(frozen=True)
class StudyJob:
    """A study in a run: its input, output folder name, hashes and the label logs show.

    Attributes:
        study: The input.
        safe_id: The study's output folder name (``studies/<safe_id>``).
        input_hash: Hash of the input files (see :func:`medzsad.cohort.inputs.input_hash`).
        config_hash: Hash of the settings that change its outputs.
        log_id: The study's visible id: the folder name with ``show_ids``, else a hash.
    """

    study: StudyInput
    safe_id: str
    input_hash: str
    config_hash: str
    log_id: str


@dataclass(frozen=True)
class SeriesSummary:
    """Which series of a study was analysed, and why.

    Attributes:
        series_uid: SeriesInstanceUID (DICOM) or the path-derived id of a volume file.
        description: SeriesDescription (``""`` for a volume file).
        modality: Modality from the header, or for a file without one (NIfTI) the modality its preset
            is for (``""`` when neither is known).
        body_part: BodyPartExamined (``""`` when absent).
        instances: Number of files read.
        preset: Name of the preprocessing preset used (chosen from the headers when ``auto``).
        why: Why this series was chosen (``""`` for a single file).
        candidates: Series in the study (1 for a single file).
        axis: Slice axis of the preset (set once the slices are cut).
        fallback: The ranking rule the chosen series misses (``no axial series; used coronal #3
            CT 'COR'``), ``""`` when it passes every rule.
    """

    series_uid: str
    description: str
    modality: str
    body_part: str
    instances: int
    preset: str
    why: str = ""
    candidates: int = 1
    axis: str = ""
    fallback: str = ""

    def with_axis(self, axis: str) -> SeriesSummary:
        """This summary with the slice axis recorded."""
        return replace(self, axis=axis)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class AxisSlices:
    """The scored slices of a study along one axis.

    Attributes:
        axis: Plane name (``axial``, ``coronal``, ``sagittal``).
        slice_axis: Voxel axis (0, 1, 2) the slices are cut along.
        slice_index: ``(n,)`` int, index along ``slice_axis`` of each scored slice.
        n_slices: Number of slices along ``slice_axis`` in the source.
        skipped: ``(n_slices,)`` bool, True for slices not scored (empty, or left out by the stride).
        covered: ``(n_slices,)`` bool, True for slices with heat (scored, or interpolated between
            scored slices of a strided axis).
        to_source: Maps this axis's ``(n, S, S)`` model-space maps (float32) to an ``(I, J, K)``
            float32 array in the source grid (uncovered slices 0): a new array the caller owns.
        start: Row of this axis's first slice in the study's ``images``.
    """

    axis: str
    slice_axis: int
    slice_index: np.ndarray
    n_slices: int
    skipped: np.ndarray
    covered: np.ndarray
    to_source: Callable[[np.ndarray], np.ndarray]
    start: int = 0

    @property
    def rows(self) -> slice:
        """This axis's rows in the study's images, positions, scores and maps."""
        return slice(self.start, self.start + len(self.slice_index))

    @property
    def code(self) -> int:
        """The axis code (index in :data:`AXES`)."""
        return AXES.index(self.axis)


@dataclass(frozen=True)
class PreparedStudy:
    """A loaded and preprocessed study, ready for the model.

    Attributes:
        study: The input it came from.
        volume: The source scan (geometry of every output).
        images: ``(N, 1, S, S)`` float32 model-size slices in ``[0, 1]`` of the scored slices of
            every axis, axis after axis (``axes[k].rows``); :mod:`medzsad.study.scoring` makes each
            batch's CLIP-normalised ``(B, 3, S, S)`` model input from them (a third of the memory
            of holding the model input).
        positions: ``(N,)`` float32 in [0, 1], the body coordinate of each slice along its own axis
            (:func:`medzsad.references.positions.body_coordinates`); every scoring path passes it,
            with the slice's axis code, to the model (the reference comparison uses them, the
            zero-shot head ignores them).
        axes: The scored axes, the primary (the preset's) first.
        window: Display window ``(low, high)`` in scan units for the overlay.
        series: Chosen series (uid, description, modality, body part, preset, why chosen), or None
            for a study built without reading (tests).
        timings_s: Seconds spent per stage.
    """

    study: StudyInput
    volume: Volume
    images: torch.Tensor
    positions: np.ndarray
    axes: tuple[AxisSlices, ...]
    window: tuple[float, float]
    series: SeriesSummary | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def primary(self) -> AxisSlices:
        """The first (the preset's) axis."""
        return self.axes[0]

    @property
    def slice_index(self) -> np.ndarray:
        """``(n,)`` scored slice indices of the primary axis."""
        return self.primary.slice_index

    @property
    def n_slices(self) -> int:
        """Slices along the primary axis."""
        return self.primary.n_slices

    @property
    def axis_codes(self) -> np.ndarray:
        """``(N,)`` int64 axis code (index in :data:`AXES`) of every image."""
        return np.concatenate(
            [np.full(len(a.slice_index), a.code, dtype=np.int64) for a in self.axes]
            or [np.zeros(0, dtype=np.int64)]
        )

    def __getstate__(self) -> dict[str, Any]:
        # sent from a worker process as a numpy array: a plain pickled buffer, not torch's
        # shared-memory file descriptors (which need the sending worker alive until received)
        state = dict(self.__dict__)
        state["images"] = self.images.numpy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import torch  # noqa: PLC0415 - only where a loaded study arrives (types.py stays torch-free)

        state = {**state, "images": torch.from_numpy(state["images"])}
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def without_images(self) -> PreparedStudy:
        """The study without its ``(N, 1, S, S)`` slices (~320 MB for 300 slices at 518 px)."""
        return replace(self, images=self.images[:0])


class Scored:
    """Model outputs of one study's slices, in slice order (from :func:`~medzsad.study.scoring.score_batch`).

    The maps are handed on once: :meth:`take_maps` gives them to whoever builds the heat map, and
    this value no longer holds them. So they are freed when the heat map is built (0.3 GB for a
    512x512x300 CT at 518 px, 0.7 GB with three axes), not when the whole study is written: the
    value itself stays referenced until then (a writer process's task arguments).

    Attributes:
        image_scores: ``(N,)`` float32 in [0, 1].
        seconds: Model time attributed to this study (its share of each batch).
    """

    def __init__(self, image_scores: np.ndarray, maps: np.ndarray, seconds: float) -> None:
        self.image_scores = image_scores
        self.seconds = seconds
        self._maps: np.ndarray | None = maps

    @property
    def maps(self) -> np.ndarray:
        """``(N, S, S)`` float32 in [0, 1]: the model's maps, the mean over its feature layers.

        Read only: it may be a segment shared with another process.

        Raises:
            RuntimeError: They were taken (:meth:`take_maps`).
        """
        if self._maps is None:
            raise RuntimeError("the maps of this study were handed on (Scored.take_maps)")
        return self._maps

    def take_maps(self) -> np.ndarray:
        """The maps (see :attr:`maps`), handed on: this value no longer holds them."""
        maps = self.maps
        self._maps = None
        return maps


class Loaded(Protocol[P_co]):
    """The result of loading a study: call ``result()`` to get it or raise the loading error."""

    def result(self) -> P_co:
        """The loaded value, or raise what loading raised."""
        ...


class Ready(Generic[P]):
    """A load that succeeded."""

    def __init__(self, value: P) -> None:
        self._value = value

    def result(self) -> P:
        """The loaded value."""
        return self._value


class Failed:
    """A study whose load (or model call) failed: ``result()`` raises its error.

    Args:
        error: What was raised.
        stage: Where: ``load`` (reading, preprocessing) or ``score`` (the model).
    """

    def __init__(self, error: BaseException, stage: str = "load") -> None:
        self.error = error
        self.stage = stage

    def result(self) -> Any:
        """Raise the loading error."""
        raise self.error


@dataclass(frozen=True)
class FinishPlace:
    """Where a study's files go, decided by the process that owns the run's ledger.

    Attributes:
        partial: The study's partial folder (``studies/<safe_id>.partial-<pid>``).
        may_replace: An existing published folder of the same name is medzsad's own.
    """

    partial: Path
    may_replace: bool


@dataclass(frozen=True)
class StudyFinish:
    """How a study ended; the runner records it in the ledger (in its own thread).

    Attributes:
        status: ``done``, ``failed`` or ``cancelled`` (the run stopped before the study was scored).
        score: Study score when done.
        error: One-line error when failed.
        stage: Stage that failed (``load``, ``score``, ``assemble``, ``calibrate``, ``postprocess``,
            ``write``, ``worker``).
        error_type: Exception class name when failed.
        summary: The ledger's ``outputs`` record when done.
        seconds: CPU stages and model time spent on the study (read, preprocess, score, ...).
        traceback: Traceback text of the failure, or of the optional outputs that failed; filled
            with ``output.show_ids`` only (it names files), logged by the runner at debug level.
    """

    status: str
    score: float | None = None
    error: str = ""
    stage: str = ""
    error_type: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    traceback: str = ""

    @classmethod
    def failure(cls, error: BaseException, stage: str, traceback: str = "") -> StudyFinish:
        """A failed outcome: the error's one-line message and class name (and ``traceback``)."""
        message = " ".join(str(error).split()) or type(error).__name__
        return cls("failed", error=message, stage=stage, error_type=type(error).__name__, traceback=traceback)
