"""Shared DICOM reading pieces: load policy, tag names in messages, dataset reading, pixel decoding.

Compressed transfer syntaxes are decoded by pydicom's pixel handlers; the ``pylibjpeg`` plugins
(``libjpeg``: JPEG baseline/extended/lossless and JPEG-LS, ``openjpeg``: JPEG 2000, ``rle``: RLE)
are dependencies of medzsad. python-gdcm is deliberately not used: its ``import dl`` breaks
pydicom when a folder named ``dl`` is on ``sys.path``.
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
from enum import Enum

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medzsad.errors import DicomError
from medzsad.io.sources import open_binary

__all__ = ["LoadPolicy", "tag_str", "read_dataset", "decode_frames", "require", "float_list"]

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


def tag_str(keyword: str) -> str:
    """``"Keyword (gggg,eeee)"`` for messages, e.g. ``ImagePositionPatient (0020,0032)``."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return keyword
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def read_dataset(path: str, *, header_only: bool) -> Dataset:
    """Read a DICOM file (or archive member).

    Files without the 128-byte preamble and ``DICM`` marker are read only when they start like a
    raw data set (group 0x0002 or 0x0008), as some old PACS exports write them.

    Args:
        path: File path or ``archive.zip!/member``.
        header_only: Stop before the pixel data (nothing large is read).

    Raises:
        DicomError: Not a DICOM file, or the file is truncated/corrupt.
    """
    try:
        with open_binary(path) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return pydicom.dcmread(fh, stop_before_pixels=header_only)
            except InvalidDicomError:
                fh.seek(0)
                start = fh.read(2)
                if start not in (b"\x08\x00", b"\x02\x00"):
                    raise
                fh.seek(0)
                return pydicom.dcmread(fh, stop_before_pixels=header_only, force=True)
    except InvalidDicomError as e:
        raise DicomError(f"{path}: not a DICOM file (no 'DICM' marker at byte 128)") from e
    except OSError as e:
        raise DicomError(f"{path}: cannot read the file ({e})") from e
    except (EOFError, ValueError, TypeError, KeyError, IndexError, struct.error) as e:
        raise DicomError(f"{path}: truncated or corrupt DICOM file ({type(e).__name__}: {e})") from e


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


def decode_frames(ds: Dataset, path: str) -> np.ndarray:
    """Decode the pixel data into ``(F, rows, cols)`` stored values.

    Colour images (RGB, YBR_*, PALETTE COLOR) are turned into luminance (ITU-R BT.601 weights) as
    float64; grey images keep their stored dtype. No rescale and no MONOCHROME1 inversion here.

    Raises:
        DicomError: No pixel data, or a decoder failed (names the transfer syntax).
    """
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DicomError(
            f"{path}: no {tag_str('PixelData')}; this object ({ds.get('SOPClassUID', 'unknown SOP class')}) "
            "is not an image; choose an image series"
        )
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
            photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
            if photometric == "PALETTE COLOR":
                from pydicom.pixels import apply_color_lut

                arr = apply_color_lut(arr, ds)
    except (ValueError, RuntimeError, AttributeError, NotImplementedError, TypeError, KeyError) as e:
        name = getattr(ts, "name", str(ts))
        raise DicomError(
            f"{path}: cannot decode {tag_str('PixelData')} (transfer syntax {name}): {e}; "
            "the file may be truncated or need a decoder that is not installed"
        ) from e
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if photometric == "PALETTE COLOR":
        samples = 3
    if n_frames == 1:
        arr = arr[np.newaxis]
    if samples > 1:
        arr = np.asarray(arr, dtype=np.float64) @ _LUMA
        log.debug("colour image converted to luminance")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
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
