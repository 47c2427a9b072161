"""Shared DICOM reading pieces: load policy, tag names in messages, dataset reading, pixel decoding.

Compressed transfer syntaxes are decoded by pydicom's pixel handlers; the ``pylibjpeg`` plugins
(``libjpeg``: JPEG baseline/extended/lossless and JPEG-LS, ``openjpeg``: JPEG 2000, ``rle``: RLE)
are dependencies of medzsad. python-gdcm is deliberately not used: its ``import dl`` breaks
pydicom when a folder named ``dl`` is on ``sys.path``.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from enum import Enum
from typing import IO

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medzsad.errors import DicomError
from medzsad.io.guard import describe, foreign_errors, quiet_library_log
from medzsad.io.j2k_check import check_jpeg2000
from medzsad.io.limits import check_bytes, check_count, current_limits
from medzsad.io.sources import open_binary

__all__ = [
    "LoadPolicy",
    "GeometryPolicy",
    "tag_str",
    "read_dataset",
    "decode_frames",
    "require",
    "float_list",
    "tag_float",
    "tag_int",
    "check_pixel_claim",
    "check_has_pixels",
]

log = logging.getLogger(__name__)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


class LoadPolicy(str, Enum):
    """What to do with a geometry problem (missing slice, non-uniform spacing, gantry tilt, ...).

    ``error`` raises :class:`~medzsad.errors.DicomError`; ``warn`` loads the slices as they are
    (the geometry SimpleITK's ImageSeriesReader gives) and records a warning on the volume;
    ``resample`` interpolates onto a regular grid and records what it did.
    """

    ERROR = "error"
    WARN = "warn"
    RESAMPLE = "resample"


@dataclass(frozen=True)
class GeometryPolicy:
    """The :class:`LoadPolicy` of each kind of geometry problem.

    Attributes:
        other: Gantry tilt, mixed image sizes/orientations/pixel spacing, several slices at one
            position (``resample`` de-shears a tilted stack).
        gaps: Missing slices and non-uniform slice spacing (``resample`` interpolates onto the
            median spacing); a cohort's ``pipeline.on_gap``.
    """

    other: LoadPolicy = LoadPolicy.WARN
    gaps: LoadPolicy = LoadPolicy.WARN

    @classmethod
    def of(
        cls, policy: LoadPolicy | str | GeometryPolicy, gaps: LoadPolicy | str | None = None
    ) -> GeometryPolicy:
        """``policy`` for every problem, with ``gaps`` (when given) for missing slices and spacing."""
        if isinstance(policy, GeometryPolicy):
            return policy if gaps is None else replace(policy, gaps=LoadPolicy(gaps))
        other = LoadPolicy(policy)
        return cls(other, other if gaps is None else LoadPolicy(gaps))


def tag_str(keyword: str) -> str:
    """``"Keyword (gggg,eeee)"`` for messages, e.g. ``ImagePositionPatient (0020,0032)``."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return keyword
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


_DEFLATED = b"1.2.840.10008.1.2.1.99"


def _check_deflated(fh: IO[bytes], path: str) -> None:
    """Inflate a deflated data set with a cap before pydicom inflates it whole (a zip bomb costs nothing).

    Raises:
        DicomError: No (0002,0000) FileMetaInformationGroupLength to find where the data set starts.
        ResourceLimitError: The data set inflates past ``ReadLimits.max_decompressed_bytes``.
    """
    head = fh.read(4096)
    fh.seek(0)
    if _DEFLATED not in head:
        return
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
        raise DicomError(
            f"{path}: deflated transfer syntax without {tag_str('FileMetaInformationGroupLength')}; "
            "cannot bound its size"
        )
    start = 144 + struct.unpack_from("<I", head, 140)[0]
    cap = current_limits().max_decompressed_bytes
    fh.seek(start)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        while not inflater.eof and (chunk := fh.read(1 << 20)):
            while chunk and not inflater.eof:
                out = inflater.decompress(chunk, 1 << 24)
                total += len(out)
                check_bytes(total, cap, path, "deflated data set", "inflated data")
                if not out and inflater.unconsumed_tail == chunk:
                    break  # no progress: let pydicom report the stream
                chunk = inflater.unconsumed_tail
    except zlib.error:
        return  # corrupt stream: pydicom reports it
    finally:
        fh.seek(0)


def read_dataset(path: str, *, header_only: bool) -> Dataset:
    """Read a DICOM file (or archive member).

    Files without the 128-byte preamble and ``DICM`` marker are read only when they start like a
    raw data set (group 0x0002 or 0x0008), as some old PACS exports write them.

    Args:
        path: File path or ``archive.zip!/member``.
        header_only: Stop before the pixel data (nothing large is read).

    Raises:
        DicomError: Not a DICOM file, or the file is truncated/corrupt (any pydicom, zlib or struct
            error is turned into one; see :mod:`medzsad.io.guard`).
        ResourceLimitError: A deflated data set inflates past the limits.
    """
    try:
        with (
            open_binary(path) as fh,
            warnings.catch_warnings(),
            foreign_errors(path, "read the DICOM data set", DicomError),
        ):
            warnings.simplefilter("ignore")
            _check_deflated(fh, path)
            try:
                return pydicom.dcmread(fh, stop_before_pixels=header_only)
            except InvalidDicomError:
                fh.seek(0)
                start = fh.read(2)
                if start not in (b"\x08\x00", b"\x02\x00"):
                    raise
                fh.seek(0)
                return pydicom.dcmread(fh, stop_before_pixels=header_only, force=True)
    except DicomError as e:
        if isinstance(e.__cause__, InvalidDicomError):
            raise DicomError(f"{path}: not a DICOM file (no 'DICM' marker at byte 128)") from e.__cause__
        if isinstance(e.__cause__, struct.error | EOFError):
            raise DicomError(
                f"{path}: the file is truncated: it ends in the middle of a data element "
                f"({describe(e.__cause__)}); copy or export it again"
            ) from e.__cause__
        raise
    except OSError as e:
        raise DicomError(f"{path}: cannot read the file ({e.strerror or e})") from e


def _scalar(ds: Dataset, keyword: str, path: str) -> object:
    """The single value of ``keyword`` (``None`` when absent or empty); VM > 1 is an error."""
    try:
        value = ds.get(keyword)
    except Exception as e:  # noqa: BLE001 - pydicom converts the raw value lazily here
        raise DicomError(f"{path}: {tag_str(keyword)} cannot be read ({type(e).__name__}: {e})") from e
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        raise DicomError(
            f"{path}: {tag_str(keyword)} has {len(value)} values (found {list(value)!r}); expected one"  # type: ignore[arg-type]
        )
    return value


def tag_float(ds: Dataset, keyword: str, path: str, default: float) -> float:
    """A finite number from a single-valued element (``default`` when absent or empty).

    Raises:
        DicomError: Several values, not a number, or NaN/infinite (names the tag and the value).
    """
    value = _scalar(ds, keyword, path)
    if value is None:
        return default
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        raise DicomError(f"{path}: {tag_str(keyword)} is not a number (found {value!r})") from e
    if not math.isfinite(out):
        raise DicomError(f"{path}: {tag_str(keyword)} is {value!r}; expected a finite number")
    return out


def tag_int(ds: Dataset, keyword: str, path: str, default: int) -> int:
    """A whole number from a single-valued element (``default`` when absent or empty).

    Raises:
        DicomError: Several values or not a whole number, e.g. ``NumberOfFrames`` ``'1A'``.
    """
    value = _scalar(ds, keyword, path)
    if value is None:
        return default
    try:
        f = float(str(value).strip()) if isinstance(value, (str, bytes)) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        raise DicomError(f"{path}: {tag_str(keyword)} is not a whole number (found {value!r})") from e
    if not math.isfinite(f) or f != int(f):
        raise DicomError(f"{path}: {tag_str(keyword)} is not a whole number (found {value!r})")
    return int(f)


def _check_pixel_length(ds: Dataset, path: str, frames: int, frame_bytes: int) -> None:
    """The pixel data must be able to hold the frames claimed (before a decoder loops over them)."""
    try:
        data = ds.get("PixelData")
    except Exception:  # noqa: BLE001 - an unreadable element is reported by the decoder
        return
    if not isinstance(data, bytes | bytearray):
        return
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and getattr(ts, "is_encapsulated", False):
        # every frame needs at least one 8-byte item header in encapsulated pixel data
        if frames > len(data) // 8:
            raise DicomError(
                f"{path}: {tag_str('NumberOfFrames')} is {frames} but the encapsulated "
                f"{tag_str('PixelData')} has only {len(data)} bytes (at least 8 per frame)"
            )
    elif len(data) < frames * frame_bytes:
        raise DicomError(
            f"{path}: {tag_str('PixelData')} has {len(data)} bytes; {frames} frame(s) of {frame_bytes} bytes "
            f"need {frames * frame_bytes} (truncated, or {tag_str('NumberOfFrames')}/{tag_str('Rows')}/"
            f"{tag_str('Columns')} are wrong)"
        )


def check_pixel_claim(ds: Dataset, path: str) -> tuple[int, int, int, int]:
    """``(frames, rows, cols, samples)`` from the header, checked against the read limits.

    Raises:
        DicomError: A count is missing, not a whole number or not positive.
        ResourceLimitError: Frames over ``max_frames`` or ``frames x rows x cols x samples x
            max(BitsAllocated/8, 8)`` over ``max_voxel_bytes`` (float64 colour conversion).
    """
    limits = current_limits()
    frames = tag_int(ds, "NumberOfFrames", path, 1) or 1
    check_count(frames, limits.max_frames, path, tag_str("NumberOfFrames"), DicomError)
    rows, cols = tag_int(ds, "Rows", path, 0), tag_int(ds, "Columns", path, 0)
    samples = tag_int(ds, "SamplesPerPixel", path, 1) or 1
    bits = tag_int(ds, "BitsAllocated", path, 16) or 16
    for keyword, n in (("Rows", rows), ("Columns", cols)):
        if not 0 < n <= 65535:
            raise DicomError(f"{path}: {tag_str(keyword)} is {n}; expected 1..65535")
    if not 0 < samples <= 4 or not 0 < bits <= 64:
        raise DicomError(
            f"{path}: {tag_str('SamplesPerPixel')} {samples} / {tag_str('BitsAllocated')} {bits}; "
            "expected 1..4 and 1..64"
        )
    _check_pixel_length(ds, path, frames, rows * cols * samples * bits // 8)
    per_value = 8 if samples > 1 else max(bits // 8, 4)
    check_bytes(
        frames * rows * cols * samples * per_value,
        limits.max_voxel_bytes,
        path,
        "NumberOfFrames x Rows x Columns x SamplesPerPixel x BitsAllocated",
    )
    return frames, rows, cols, samples


def require(ds: Dataset, keyword: str, path: str, what: str) -> object:
    """The value of ``keyword`` or a :class:`DicomError` naming the file and the tag."""
    value = ds.get(keyword)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        raise DicomError(f"{path}: missing {tag_str(keyword)}; {what}")
    return value


def float_list(value: object, n: int, keyword: str, path: str) -> list[float]:
    """``n`` floats from a multi-valued element, or a :class:`DicomError` naming the tag."""
    try:
        out = [float(x) for x in value]  # type: ignore[attr-defined]
    except (TypeError, ValueError) as e:
        raise DicomError(f"{path}: {tag_str(keyword)} is not numeric (found {value!r})") from e
    if len(out) != n or not all(np.isfinite(out)):
        raise DicomError(f"{path}: {tag_str(keyword)} needs {n} finite numbers (found {value!r})")
    return out


_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: (7FE0,0010) as it starts an element in little- and big-endian files.
_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


def _ends_in_pixel_header(path: str) -> bool:
    """True when the file ends inside the PixelData element's header (cut right before its pixels)."""
    try:
        with open_binary(path) as fh:
            data = fh.read()
    except OSError:
        return False
    return any(tag in data[-12:] for tag in _PIXEL_TAGS)


def check_has_pixels(ds: Dataset, path: str) -> None:
    """Raise a :class:`DicomError` that says why an object has no pixel data.

    A file cut before its pixels (pydicom reads the header and stops quietly at the end of the
    file) and a header-only copy are told apart from objects that are no image at all.

    Raises:
        DicomError: No PixelData (7FE0,0010), FloatPixelData or DoubleFloatPixelData.
    """
    if any(k in ds for k in _PIXEL_KEYWORDS):
        return
    sop = ds.get("SOPClassUID", "")
    name = getattr(sop, "name", "") or str(sop) or "unknown SOP class"
    if _ends_in_pixel_header(path):
        raise DicomError(
            f"{path}: the file is truncated: it ends inside the {tag_str('PixelData')} element "
            f"({name}); copy or export it again"
        )
    if "Rows" in ds or "Image Storage" in name:
        raise DicomError(
            f"{path}: no {tag_str('PixelData')} in this {name} file: it is truncated before its pixels "
            "or a header-only copy; copy or export the series again with its pixel data"
        )
    raise DicomError(f"{path}: no {tag_str('PixelData')}: {name} is not an image; choose an image series")


def decode_frames(ds: Dataset, path: str) -> np.ndarray:
    """Decode the pixel data into ``(F, rows, cols)`` stored values.

    Colour images (RGB, YBR_*, PALETTE COLOR) are turned into luminance (ITU-R BT.601 weights) as
    float64; grey images keep their stored dtype. No rescale and no MONOCHROME1 inversion here.

    Raises:
        DicomError: No pixel data, or a decoder failed (names the transfer syntax).
    """
    check_has_pixels(ds, path)
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    n_frames, rows, cols, samples = check_pixel_claim(ds, path)
    name = getattr(ts, "name", str(ts))
    what = f"decode {tag_str('PixelData')} (transfer syntax {name})"
    check_jpeg2000(ds, path)
    with foreign_errors(path, what, DicomError), warnings.catch_warnings(), quiet_library_log("pydicom"):
        warnings.simplefilter("ignore")
        arr = ds.pixel_array
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, ds)
    if photometric == "PALETTE COLOR":
        samples = 3
    if n_frames == 1:
        arr = arr[np.newaxis]
    if samples > 1:
        if arr.ndim != 4 or arr.shape[-1] != samples:
            raise DicomError(
                f"{path}: decoded colour pixel data has shape {arr.shape}; expected "
                f"({n_frames}, {rows}, {cols}, {samples}) from {tag_str('SamplesPerPixel')}"
            )
        arr = np.asarray(arr, dtype=np.float64) @ _LUMA[:samples] if samples == 3 else arr[..., 0]
        log.debug("colour image converted to luminance")
    if arr.ndim != 3 or arr.shape[1:] != (rows, cols) or arr.shape[0] != n_frames:
        raise DicomError(
            f"{path}: decoded pixel data has shape {arr.shape}, expected ({n_frames}, {rows}, {cols}) "
            f"from {tag_str('NumberOfFrames')}/{tag_str('Rows')}/{tag_str('Columns')}"
        )
    return arr


def short_name(path: str) -> str:
    """The last two components of a path, for messages about many files."""
    parts = path.replace("\\", "/").split("/")
    return os.path.join(*parts[-2:]) if len(parts) > 1 else path
