"""Readers behind one interface, chosen by suffix (as MONAI's ``ImageReader``), and :func:`load_volume`.

Each reader has ``verify_suffix(path) -> bool`` and ``read(path, ...) -> Volume``.
:func:`load_volume` accepts a :class:`SeriesRef` from discovery, a scan file, or a folder/zip/DICOMDIR
(discovered, then the series chosen with :func:`select_series`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Protocol

from medzsad.errors import InputError
from medzsad.io.dicom_common import GeometryPolicy, LoadPolicy
from medzsad.io.dicom_series import load_dicom_series
from medzsad.io.discovery import ITK_SUFFIXES, NIFTI_SUFFIXES, discover
from medzsad.io.guard import foreign_errors
from medzsad.io.image2d import IMAGE2D_SUFFIXES, load_image2d
from medzsad.io.itk_image import load_itk
from medzsad.io.limits import ReadLimits, use_limits
from medzsad.io.nifti import load_nifti
from medzsad.io.series_ref import SeriesRef
from medzsad.io.series_selection import SeriesRules, select_series
from medzsad.io.volume import Volume

__all__ = [
    "ImageReader",
    "DicomReader",
    "NiftiReader",
    "ItkReader",
    "Image2DReader",
    "reader_for",
    "load_volume",
]

log = logging.getLogger(__name__)


class ImageReader(Protocol):
    """A scan reader."""

    kind: str

    def verify_suffix(self, path: str) -> bool:
        """True when this reader handles ``path`` (by its name)."""
        ...

    def read(self, paths: Sequence[str], policy: GeometryPolicy, volume_index: int | None) -> Volume:
        """Read the file(s) of one series."""
        ...


class DicomReader:
    """DICOM series, multi-frame objects and 2D DICOM images (any file that is not another kind)."""

    kind = "dicom"

    def verify_suffix(self, path: str) -> bool:
        """DICOM files often have no suffix: accept anything no other reader claims."""
        return not any(r.verify_suffix(path) for r in (NiftiReader(), ItkReader(), Image2DReader()))

    def read(self, paths: Sequence[str], policy: GeometryPolicy, volume_index: int | None) -> Volume:
        """Load the series (``volume_index`` does not apply)."""
        return load_dicom_series(list(paths), policy)


class NiftiReader:
    """``.nii`` / ``.nii.gz``."""

    kind = "nifti"

    def verify_suffix(self, path: str) -> bool:
        """True for NIfTI suffixes."""
        return path.lower().endswith(NIFTI_SUFFIXES)

    def read(self, paths: Sequence[str], policy: GeometryPolicy, volume_index: int | None) -> Volume:
        """Load the one file."""
        return load_nifti(_one(paths, self.kind), volume_index)


class ItkReader:
    """``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd`` through SimpleITK."""

    kind = "itk"

    def verify_suffix(self, path: str) -> bool:
        """True for NRRD/MetaImage suffixes."""
        return path.lower().endswith(ITK_SUFFIXES)

    def read(self, paths: Sequence[str], policy: GeometryPolicy, volume_index: int | None) -> Volume:
        """Load the one file."""
        return load_itk(_one(paths, self.kind), volume_index)


class Image2DReader:
    """PNG, JPEG, TIFF, BMP."""

    kind = "image2d"

    def verify_suffix(self, path: str) -> bool:
        """True for 2D image suffixes."""
        return path.lower().endswith(IMAGE2D_SUFFIXES)

    def read(self, paths: Sequence[str], policy: GeometryPolicy, volume_index: int | None) -> Volume:
        """Load the one file."""
        return load_image2d(_one(paths, self.kind))


_READERS: dict[str, ImageReader] = {
    r.kind: r for r in (NiftiReader(), ItkReader(), Image2DReader(), DicomReader())
}


def _one(paths: Sequence[str], kind: str) -> str:
    if len(paths) != 1:
        raise InputError(f"a {kind} series is one file, got {len(paths)}")
    return paths[0]


def reader_for(path_or_kind: str) -> ImageReader:
    """The reader for a kind (``dicom``, ``nifti``, ``itk``, ``image2d``) or a file name."""
    if path_or_kind in _READERS:
        return _READERS[path_or_kind]
    for reader in _READERS.values():
        if reader.verify_suffix(path_or_kind):
            return reader
    return _READERS["dicom"]


def load_volume(
    source: SeriesRef | str | os.PathLike[str],
    *,
    policy: LoadPolicy | str = LoadPolicy.WARN,
    gaps: LoadPolicy | str | None = None,
    volume_index: int | None = None,
    rules: SeriesRules | None = None,
    limits: ReadLimits | None = None,
) -> Volume:
    """Load one scan into a :class:`Volume`.

    Args:
        source: A series from :func:`~medzsad.io.discovery.discover`, a scan file, or a folder /
            ``.zip`` / DICOMDIR holding exactly one study (its series is chosen by ``rules``).
        policy: ``error``, ``warn`` or ``resample`` for DICOM geometry problems.
        gaps: The policy of missing slices and non-uniform spacing (default ``policy``); a
            cohort's ``pipeline.on_gap`` (``fail`` is ``error``).
        volume_index: Volume of a 4D NIfTI/NRRD file (required when it has more than one).
        rules: Series selection rules for a folder source (default :class:`SeriesRules`).
        limits: Size limits checked before allocating (default: :func:`~medzsad.io.limits.current_limits`).

    Raises:
        InputError: (``DicomError``/``NiftiError``/``ImageError``/``ResourceLimitError``/...) the
            scan cannot be read; the message names the file and the tag or field. No other
            exception escapes (see :mod:`medzsad.io.guard`).
    """
    geometry = GeometryPolicy.of(policy, gaps)
    where = source.files[0] if isinstance(source, SeriesRef) and source.files else os.fspath(source)  # type: ignore[arg-type]
    with use_limits(limits), foreign_errors(str(where), "load the scan"):
        return _load(source, geometry, volume_index, rules)


def _load(
    source: SeriesRef | str | os.PathLike[str],
    policy: GeometryPolicy,
    volume_index: int | None,
    rules: SeriesRules | None,
) -> Volume:
    if isinstance(source, SeriesRef):
        return reader_for(source.kind).read(source.files, policy, volume_index)
    path = os.path.abspath(os.fspath(source))
    if (
        os.path.isfile(path)
        and not path.lower().endswith(".zip")
        and os.path.basename(path).upper() != "DICOMDIR"
    ):
        return reader_for(path).read([path], policy, volume_index)
    found = discover(path)
    if not found.studies and found.skipped:
        first = found.skipped[0]
        raise InputError(
            f"{path}: holds no usable study; {len(found.skipped)} file(s) skipped, e.g. {first.path}: "
            f"{first.reason}"
        )
    if len(found.studies) != 1:
        raise InputError(
            f"{path}: holds {len(found.studies)} studies; discover() it and load one series at a time"
        )
    study = found.studies[0]
    chosen = select_series(study, rules).require(f"{path}")
    return reader_for(chosen.kind).read(chosen.files, policy, volume_index)
