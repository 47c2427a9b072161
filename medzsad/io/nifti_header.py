"""Check a NIfTI-1/2 header from its raw bytes before nibabel allocates anything.

Reads at most the 540-byte header (through a capped gzip stream for ``.nii.gz``), so a 66-byte file
that claims 2048 x 2048 x 2560 voxels, or a gzip bomb, costs nothing. Checks ``sizeof_hdr``,
``dim[0]`` and ``dim[1..dim[0]]``, the ``datatype`` code and the claimed voxel bytes against
:class:`~medzsad.io.limits.ReadLimits`; CIFTI files (intent codes 3000-3099) are refused: they have
no voxel grid.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass

from medzsad.errors import NiftiError, UnsupportedInputError
from medzsad.io.limits import ReadLimits, check_bytes, current_limits

__all__ = ["NiftiClaim", "check_nifti_header", "DATATYPE_BYTES"]

#: NIfTI ``datatype`` code -> bytes per voxel (nifti1.h ``NIFTI_TYPE_*``; RGB/RGBA/complex included).
DATATYPE_BYTES = {
    2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
    1536: 16, 1792: 16, 2048: 32, 2304: 4,
}  # fmt: skip
_CIFTI_INTENTS = range(3000, 3100)


@dataclass(frozen=True)
class NiftiClaim:
    """What a NIfTI header claims: ``shape`` (``dim[1..dim[0]]``), ``datatype`` code, ``intent_code``."""

    shape: tuple[int, ...]
    datatype: int
    intent_code: int


def _head(path: str, n: int) -> bytes:
    try:
        if path.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read(n)
        with open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error) as e:
        raise NiftiError(f"{path}: cannot read the NIfTI file header ({type(e).__name__}: {e})") from e


def _parse(head: bytes, path: str) -> NiftiClaim:
    if len(head) < 348:
        raise NiftiError(f"{path}: header is {len(head)} bytes; a NIfTI header has 348 (NIfTI-1) or 540")
    for endian in "<>":
        size = struct.unpack_from(endian + "i", head, 0)[0]
        if size == 348:
            dim = struct.unpack_from(endian + "8h", head, 40)
            datatype = struct.unpack_from(endian + "h", head, 70)[0]
            intent = struct.unpack_from(endian + "h", head, 68)[0]
            break
        if size == 540:
            if len(head) < 540:
                raise NiftiError(f"{path}: NIfTI-2 header truncated at {len(head)} of 540 bytes")
            datatype = struct.unpack_from(endian + "h", head, 12)[0]
            dim = struct.unpack_from(endian + "8q", head, 16)
            intent = struct.unpack_from(endian + "i", head, 504)[0]
            break
    else:
        raise NiftiError(
            f"{path}: sizeof_hdr is {struct.unpack_from('<i', head, 0)[0]}; expected 348 (NIfTI-1) or 540 "
            "(NIfTI-2)"
        )
    if not 1 <= dim[0] <= 7:
        raise NiftiError(f"{path}: dim[0] (number of dimensions) is {dim[0]}; expected 1..7")
    shape = tuple(int(x) for x in dim[1 : dim[0] + 1])
    if any(x < 1 for x in shape):
        raise NiftiError(
            f"{path}: dim[1..{dim[0]}] is {list(shape)} (zero size or negative); expected positive sizes"
        )
    return NiftiClaim(shape, int(datatype), int(intent))


def check_nifti_header(path: str, limits: ReadLimits | None = None) -> NiftiClaim:
    """Check the header claims of a ``.nii``/``.nii.gz`` file.

    Raises:
        NiftiError: Truncated header, bad ``sizeof_hdr`` or ``dim``.
        UnsupportedInputError: Unknown ``datatype`` code, or a CIFTI file.
        ResourceLimitError: ``dim[1..]`` x bytes per voxel over ``max_voxel_bytes``.
    """
    limits = limits or current_limits()
    claim = _parse(_head(path, 540), path)
    if claim.datatype not in DATATYPE_BYTES:
        raise UnsupportedInputError(
            f"{path}: datatype (header field) is {claim.datatype}; expected a NIfTI type code "
            f"({', '.join(str(c) for c in DATATYPE_BYTES)})"
        )
    if claim.intent_code in _CIFTI_INTENTS:
        raise UnsupportedInputError(
            f"{path}: intent_code {claim.intent_code} marks a CIFTI file (surface/connectivity data, no "
            "voxel grid or affine); medzsad reads volumes"
        )
    n_bytes = math.prod(claim.shape) * max(DATATYPE_BYTES[claim.datatype], 4)
    check_bytes(n_bytes, limits.max_voxel_bytes, path, "dim[1..] x datatype")
    return claim
