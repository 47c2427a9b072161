"""Size and sanity limits checked *before* anything large is allocated or decompressed.

A header is a claim: a 66-byte ``.nii.gz`` can claim 2048 x 2048 x 2560 int16 voxels, a 2 KB DICOM
``NumberOfFrames = 1000000000``, a zip member 2 GiB. Every reader in :mod:`medzsad.io` compares such
claims with a :class:`ReadLimits` and raises :class:`~medzsad.errors.ResourceLimitError` (naming the
file, the field, the value found and the limit) instead of trying.

The limits in force are :func:`current_limits`: the default (:meth:`ReadLimits.default`, from the
memory available when first asked, or from the ``MEDZSAD_MAX_SCAN_GIB`` environment variable, which
worker processes inherit) unless a caller sets others for a block of code with :func:`use_limits`
(``load_volume(..., limits=...)`` and ``discover(..., limits=...)`` do that).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

from medzsad.errors import ConfigError, InputError, ResourceLimitError

__all__ = [
    "ReadLimits",
    "current_limits",
    "use_limits",
    "available_memory_bytes",
    "check_bytes",
    "check_count",
    "GIB",
    "MIB",
    "ENV_VAR",
]

MIB = 1 << 20
GIB = 1 << 30
ENV_VAR = "MEDZSAD_MAX_SCAN_GIB"
_FLOOR = 256 * MIB
_CEILING = 64 * GIB


def available_memory_bytes() -> int:
    """Memory available to a new allocation: ``MemAvailable`` of ``/proc/meminfo``, else physical pages.

    Returns 8 GiB when neither can be read (e.g. on a platform without ``/proc`` or ``sysconf``).
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * GIB


@dataclass(frozen=True)
class ReadLimits:
    """What a single input may claim before medzsad refuses to read it.

    Attributes:
        max_voxel_bytes: Bytes of one decoded scan (voxels x the larger of the stored item size and
            4 for the float32 volume). Default: ``MEDZSAD_MAX_SCAN_GIB`` GiB when that environment
            variable is set, else a quarter of the available memory, between 256 MiB and 64 GiB.
        max_decompressed_bytes: Bytes one gzip stream, zip member or deflated DICOM data set may
            inflate to (default: ``max_voxel_bytes`` + 64 MiB for headers).
        max_frames: ``NumberOfFrames`` of one DICOM object, and slices of one series.
        max_dimensions: Dimensions of a NIfTI/NRRD/MetaImage array (``dim[0]``, ``NDims``, ``dimension``).
        max_header_bytes: Text header of an NRRD/MetaImage file.
        max_archive_members: Members of one ``.zip`` archive looked at by discovery.
        max_dicomdir_records: Directory records of one DICOMDIR.
    """

    max_voxel_bytes: int
    max_decompressed_bytes: int
    max_frames: int = 100_000
    max_dimensions: int = 7
    max_header_bytes: int = 1 * MIB
    max_archive_members: int = 200_000
    max_dicomdir_records: int = 1_000_000

    @classmethod
    def default(cls) -> ReadLimits:
        """``MEDZSAD_MAX_SCAN_GIB`` when set, else from the available memory (see :attr:`max_voxel_bytes`).

        Raises:
            ConfigError: ``MEDZSAD_MAX_SCAN_GIB`` is not a positive number.
        """
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            try:
                gib = float(env)
            except ValueError:
                gib = -1.0
            if not 0 < gib < 1 << 20:
                raise ConfigError(f"{ENV_VAR}={env!r}: expected a positive number of GiB, e.g. 8")
            return cls.of_bytes(int(gib * GIB))
        voxel = min(max(available_memory_bytes() // 4, _FLOOR), _CEILING)
        return cls.of_bytes(voxel)

    @classmethod
    def of_bytes(cls, max_voxel_bytes: int) -> ReadLimits:
        """Limits with a given voxel-byte ceiling (the decompression limit follows it)."""
        return cls(max_voxel_bytes=max_voxel_bytes, max_decompressed_bytes=max_voxel_bytes + 64 * MIB)

    def replace(self, **changes: int) -> ReadLimits:
        """A copy with some fields changed."""
        return replace(self, **changes)


_CURRENT: ContextVar[ReadLimits | None] = ContextVar("medzsad_read_limits", default=None)
_DEFAULT: dict[str, ReadLimits] = {}


def current_limits() -> ReadLimits:
    """The limits in force (set by :func:`use_limits`, else the default, computed once per env value)."""
    limits = _CURRENT.get()
    if limits is not None:
        return limits
    key = os.environ.get(ENV_VAR, "")
    if key not in _DEFAULT:
        _DEFAULT[key] = ReadLimits.default()
    return _DEFAULT[key]


@contextmanager
def use_limits(limits: ReadLimits | None) -> Iterator[ReadLimits]:
    """Make ``limits`` the ones in force inside the block (``None``: keep those in force)."""
    if limits is None:
        yield current_limits()
        return
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


def _fmt(n: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def check_bytes(n_bytes: int, limit: int, path: str, field: str, what: str = "decoded voxel data") -> None:
    """Raise when a claimed size is over ``limit``.

    Args:
        n_bytes: Size the header claims (already multiplied out).
        limit: The ceiling (a :class:`ReadLimits` field).
        path: The file, for the message.
        field: Header field(s) the claim comes from, e.g. ``dim[1..3] x bitpix``.
        what: What would be allocated.

    Raises:
        ResourceLimitError: ``n_bytes > limit`` or negative.
    """
    if n_bytes < 0:
        raise ResourceLimitError(f"{path}: {field} gives a negative size ({n_bytes}); the header is corrupt")
    if n_bytes > limit:
        raise ResourceLimitError(
            f"{path}: {field} claims {_fmt(n_bytes)} of {what}, over the read limit of {_fmt(limit)}; "
            "the header is corrupt or the scan is too large for this machine (raise the limit with "
            "medzsad.io.limits.use_limits / load_volume(limits=...) if it is genuine)"
        )


def check_count(n: int, limit: int, path: str, field: str, error: type[InputError] = InputError) -> None:
    """Raise when a count (frames, dimensions, members) is outside ``1..limit``.

    Raises:
        ResourceLimitError: ``n > limit``.
        InputError: ``error`` (an :class:`InputError` subclass) for ``n < 1``.
    """
    if n < 1:
        raise error(f"{path}: {field} is {n}; expected 1..{limit}")
    if n > limit:
        raise ResourceLimitError(f"{path}: {field} is {n}, over the read limit; expected 1..{limit}")
