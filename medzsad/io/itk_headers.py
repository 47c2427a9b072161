"""Check NRRD and MetaImage text headers in Python *before* SimpleITK sees the file.

SimpleITK trusts these headers: ``NDims = -3`` in an ``.mha`` segfaults it, a ``DimSize`` of
2000 x 2000 x 2000 is allocated before the data is read, and ``ElementDataFile = /dev/zero`` (or
``../../elsewhere.raw``) is followed. :func:`check_itk_header` parses the header text (at most
``ReadLimits.max_header_bytes``), checks dimension counts, sizes, the element type, the voxel bytes
against the limits and that a detached data file is a regular file inside the header's folder.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from medzsad.errors import NiftiError, UnsafePathError, UnsupportedInputError
from medzsad.io.limits import ReadLimits, check_bytes, check_count, current_limits

__all__ = ["ItkHeader", "check_itk_header"]

_MET_SIZES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG": 8, "MET_ULONG": 8, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}  # fmt: skip
_NRRD_SIZES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), 2),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32"), 4),
    **dict.fromkeys(("uint32_t", "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "int64"), 8),
    **dict.fromkeys(("signed long long int", "int64_t", "ulonglong", "unsigned long long"), 8),
    **dict.fromkeys(("unsigned long long int", "uint64", "uint64_t", "double"), 8),
}
_NRRD_ENCODINGS = {"raw", "gzip", "gz", "bzip2", "bz2", "ascii", "text", "txt", "hex"}


@dataclass(frozen=True)
class ItkHeader:
    """What the text header claims.

    Attributes:
        sizes: Size of each dimension (fastest first).
        item_bytes: Bytes per element of one channel.
        channels: Components per voxel.
        data_file: The detached data file (absolute), or ``None`` when the data follow the header.
    """

    sizes: tuple[int, ...]
    item_bytes: int
    channels: int
    data_file: str | None


def _read_head(path: str, limits: ReadLimits) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(limits.max_header_bytes)
    except OSError as e:
        raise NiftiError(f"{path}: cannot read the file ({e.strerror or e})") from e
    return head.decode("latin-1")


def _ints(text: str, path: str, field: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split())
    except ValueError as e:
        raise NiftiError(f"{path}: {field} must be whole numbers (found {text.strip()[:80]!r})") from e
    if not vals or any(v < 1 for v in vals):
        raise NiftiError(f"{path}: {field} must be positive whole numbers (found {text.strip()[:80]!r})")
    return vals


def _one_int(text: str, path: str, field: str, limit: int) -> int:
    try:
        n = int(text.strip())
    except ValueError as e:
        raise NiftiError(f"{path}: {field} must be a whole number (found {text.strip()[:80]!r})") from e
    check_count(n, limit, path, field, NiftiError)
    return n


def _data_file(path: str, name: str, field: str) -> str:
    """The detached data file, refused unless it is a regular file inside the header's folder."""
    name = name.strip()
    if not name or " " in name or name.upper().startswith("LIST") or "%" in name:
        raise UnsupportedInputError(
            f"{path}: {field} = {name[:80]!r}; medzsad reads one data file named in the header "
            "(file lists and patterns are not supported); convert the image to .nii.gz or .nrrd"
        )
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    target = os.path.realpath(os.path.join(folder, name))
    if os.path.commonpath([folder, target]) != folder:
        raise UnsafePathError(
            f"{path}: {field} = {name[:80]!r} points outside the header's folder {folder}; "
            "keep the data file next to its header"
        )
    if not os.path.isfile(target):
        raise NiftiError(f"{path}: {field} = {name[:80]!r} is not a regular file next to the header")
    return target


def _meta_fields(head: str) -> tuple[dict[str, str], bool]:
    fields: dict[str, str] = {}
    for line in head.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            return fields, True
    return fields, False


def _check_meta(path: str, limits: ReadLimits) -> ItkHeader:
    fields, complete = _meta_fields(_read_head(path, limits))
    if not complete:
        raise NiftiError(f"{path}: no ElementDataFile line in the first {limits.max_header_bytes} bytes")
    ndims = _one_int(fields.get("ndims", ""), path, "NDims", limits.max_dimensions)
    sizes = _ints(fields.get("dimsize", ""), path, "DimSize")
    if len(sizes) != ndims:
        raise NiftiError(f"{path}: DimSize has {len(sizes)} values but NDims is {ndims}")
    etype = fields.get("elementtype", "").upper()
    if etype not in _MET_SIZES:
        raise UnsupportedInputError(
            f"{path}: ElementType {etype[:40]!r} is not a scalar MetaImage type ({', '.join(_MET_SIZES)})"
        )
    channels = _one_int(fields.get("elementnumberofchannels", "1"), path, "ElementNumberOfChannels", 64)
    name = fields["elementdatafile"]
    data = None if name.strip().upper() == "LOCAL" else _data_file(path, name, "ElementDataFile")
    return ItkHeader(sizes, _MET_SIZES[etype], channels, data)


def _nrrd_fields(head: str, path: str) -> dict[str, str]:
    lines = head.splitlines()
    if not lines or not lines[0].startswith("NRRD"):
        raise NiftiError(f"{path}: no NRRD magic (first line {lines[0][:20] if lines else ''!r})")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if not line.strip():
            break
        if line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.lstrip("=").strip()
    return fields


def _check_nrrd(path: str, limits: ReadLimits) -> ItkHeader:
    fields = _nrrd_fields(_read_head(path, limits), path)
    ndims = _one_int(fields.get("dimension", ""), path, "dimension", limits.max_dimensions)
    sizes = _ints(fields.get("sizes", ""), path, "sizes")
    if len(sizes) != ndims:
        raise NiftiError(f"{path}: sizes has {len(sizes)} values but dimension is {ndims}")
    ntype = " ".join(fields.get("type", "").lower().split())
    if ntype not in _NRRD_SIZES:
        raise UnsupportedInputError(f"{path}: NRRD type {ntype[:40]!r} is not a supported scalar type")
    encoding = fields.get("encoding", "").lower()
    if encoding not in _NRRD_ENCODINGS:
        raise UnsupportedInputError(
            f"{path}: NRRD encoding {encoding[:40]!r}; expected one of {sorted(_NRRD_ENCODINGS)}"
        )
    name = fields.get("data file", fields.get("datafile"))
    data = None if name is None else _data_file(path, name, "data file")
    if data is None and path.lower().endswith(".nhdr"):
        raise NiftiError(f"{path}: detached NRRD header without a 'data file' field")
    return ItkHeader(sizes, _NRRD_SIZES[ntype], 1, data)


def check_itk_header(path: str, limits: ReadLimits | None = None) -> ItkHeader | None:
    """Check an ``.mha``/``.mhd``/``.nrrd``/``.nhdr`` header; ``None`` for other suffixes.

    Raises:
        NiftiError: A required field is missing or malformed (names the field and the value).
        ResourceLimitError: Dimensions or voxel bytes over the limits.
        UnsafePathError: The data file is outside the header's folder or not a regular file.
        UnsupportedInputError: Element type, encoding or file list medzsad does not read.
    """
    limits = limits or current_limits()
    low = path.lower()
    if low.endswith((".mha", ".mhd")):
        header = _check_meta(path, limits)
        field = "DimSize x ElementType"
    elif low.endswith((".nrrd", ".nhdr")):
        header = _check_nrrd(path, limits)
        field = "sizes x type"
    else:
        return None
    n = math.prod(header.sizes) * header.channels
    check_bytes(n * max(header.item_bytes, 4), limits.max_voxel_bytes, path, field)
    return header
