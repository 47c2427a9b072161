"""A structural check of JPEG 2000 pixel data before it reaches the decoder.

OpenJPEG can loop for minutes on a damaged stream: pydicom's ``GDCMJ2K_TextGBR.dcm`` with two
bytes inserted into its JP2 header (a box length that runs past its parent) hangs the decode.
Every frame is walked here first, in time linear in its markers: the JP2 boxes (when the frame is
wrapped in a JP2 file) must nest inside their parents, the codestream must start with SOC and SIZ
(ISO/IEC 15444-1 A.4.1, A.5.1), SIZ must describe the image the DICOM header declares (Rows,
Columns, SamplesPerPixel), every marker segment of the main header must fit, and every tile-part's
Psot (A.4.2) must end where the next tile-part or the EOC marker starts. A frame that fails is
refused with a :class:`~medzsad.errors.DicomError` naming the file, the frame and the tag.
"""

from __future__ import annotations

import struct

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from medzsad.errors import DicomError

__all__ = ["JPEG2000_SYNTAXES", "check_jpeg2000", "check_codestream"]

#: JPEG 2000 and High-Throughput JPEG 2000 transfer syntaxes (DICOM PS3.5 A.4.4, A.4.11).
JPEG2000_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.92",
        "1.2.840.10008.1.2.4.93",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    }
)
_PIXEL_DATA = "PixelData (7FE0,0010)"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_SUPERBOXES = {b"jp2h", b"res ", b"uinf", b"asoc"}
_SOC, _SIZ, _SOT, _SOD, _EOC = 0xFF4F, 0xFF51, 0xFF90, 0xFF93, 0xFFD9


class _Bad(ValueError):
    """A structural fault of one frame (turned into a DicomError with the file and frame)."""


def _box_header(buf: bytes, at: int, end: int) -> tuple[bytes, int, int]:
    """``(type, payload start, box end)`` of the JP2 box at ``at`` within ``[at, end)``."""
    if at + 8 > end:
        raise _Bad(f"JP2 box header at byte {at} runs past its parent (ends at {end})")
    length, kind = struct.unpack_from(">I4s", buf, at)
    start = at + 8
    if length == 1:
        if at + 16 > end:
            raise _Bad(f"JP2 box {kind!r} at byte {at}: extended length runs past its parent")
        length = struct.unpack_from(">Q", buf, at + 8)[0]
        start = at + 16
    elif length == 0:
        length = end - at
    if length < start - at or at + length > end:
        raise _Bad(f"JP2 box {kind!r} at byte {at} claims {length} bytes; its parent ends at byte {end}")
    return kind, start, at + length


def _codestream_of_jp2(buf: bytes) -> bytes:
    """The contiguous codestream (``jp2c`` box) of a JP2 file, after checking every box nests."""
    stack = [(0, len(buf))]
    codestream = b""
    while stack:
        at, end = stack.pop()
        while at < end:
            if end == len(buf) and not buf[at:].strip(b"\x00"):
                break  # the even-length padding of a DICOM fragment
            kind, start, stop = _box_header(buf, at, end)
            if kind in _SUPERBOXES:
                stack.append((start, stop))
            elif kind == b"jp2c" and not codestream:
                codestream = buf[start:stop]
            at = stop
    if not codestream:
        raise _Bad("JP2 file without a codestream (jp2c) box")
    return codestream


def _check_siz(cs: bytes, rows: int, cols: int, samples: int) -> None:
    if len(cs) < 4 + 38 or struct.unpack_from(">HH", cs, 0) != (_SOC, _SIZ):
        raise _Bad("the codestream does not start with the SOC and SIZ markers")
    lsiz, _, xsiz, ysiz, xo, yo, xt, yt, xto, yto, csiz = struct.unpack_from(">HHIIIIIIIIH", cs, 4)
    if lsiz != 38 + 3 * csiz or 4 + lsiz > len(cs):
        raise _Bad(f"SIZ marker length {lsiz} does not fit {csiz} components")
    if xt == 0 or yt == 0 or xo >= xsiz or yo >= ysiz or xto > xo or yto > yo:
        raise _Bad(f"SIZ marker: impossible image/tile grid (image {xsiz}x{ysiz}, tile {xt}x{yt})")
    if (xsiz - xo, ysiz - yo) != (cols, rows) or csiz != samples:
        raise _Bad(
            f"SIZ marker describes {xsiz - xo}x{ysiz - yo} pixels with {csiz} component(s); the header "
            f"declares Columns (0028,0011) {cols} x Rows (0028,0010) {rows}, SamplesPerPixel "
            f"(0028,0002) {samples}"
        )
    for c in range(csiz):
        depth = (cs[4 + 38 + 3 * c] & 0x7F) + 1
        if depth > 38 or cs[4 + 39 + 3 * c] == 0 or cs[4 + 40 + 3 * c] == 0:
            raise _Bad(f"SIZ marker: component {c} has bit depth {depth} or a zero subsampling factor")


def _check_markers(cs: bytes) -> None:
    """Main-header marker segments fit; tile-parts chain by Psot up to EOC."""
    at = 4 + struct.unpack_from(">H", cs, 4)[0]
    while True:  # main header: marker segments up to the first SOT
        if at + 4 > len(cs):
            raise _Bad(f"the main header ends at byte {len(cs)} before the first tile-part")
        marker, length = struct.unpack_from(">HH", cs, at)
        if marker == _SOT:
            break
        if marker >> 8 != 0xFF or length < 2 or at + 2 + length > len(cs):
            raise _Bad(f"marker 0x{marker:04X} at byte {at} (length {length}) runs past the codestream")
        at += 2 + length
    while True:  # tile-parts, each Psot bytes from its SOT
        if at == len(cs) or at + 2 <= len(cs) and struct.unpack_from(">H", cs, at)[0] == _EOC:
            return  # EOC, or none (decoders accept a codestream that just ends after its last tile)
        if at + 12 > len(cs) or struct.unpack_from(">HH", cs, at) != (_SOT, 10):
            raise _Bad(f"expected a tile-part (SOT) or the end (EOC) at byte {at}")
        psot = struct.unpack_from(">I", cs, at + 6)[0]
        if psot == 0:  # the last tile-part runs to EOC
            if cs.rstrip(b"\x00")[-2:] != b"\xff\xd9":
                raise _Bad("the codestream does not end with the EOC marker")
            return
        if psot < 14 or at + psot > len(cs):
            raise _Bad(f"tile-part at byte {at} claims {psot} bytes; the codestream has {len(cs)}")
        at += psot


def check_codestream(frame: bytes, rows: int, cols: int, samples: int) -> None:
    """Check one JPEG 2000 frame (a raw codestream or a JP2 file).

    Raises:
        ValueError: The structural fault, in words.
    """
    buf = bytes(frame).rstrip(b"\x00") or b"\x00"
    if buf.startswith(_JP2_SIGNATURE):
        buf = _codestream_of_jp2(bytes(frame))
    _check_siz(buf, rows, cols, samples)
    _check_markers(buf)


def check_jpeg2000(ds: Dataset, path: str) -> None:
    """Refuse JPEG 2000 pixel data whose structure a decoder could loop on, before decoding.

    Other transfer syntaxes, and pixel data that is not encapsulated bytes, pass unchecked.

    Raises:
        DicomError: A frame's JP2 boxes, SIZ marker, marker segments or tile-parts are
            inconsistent (names the file, the frame and PixelData (7FE0,0010)).
    """
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    data = ds.get("PixelData") if ts in JPEG2000_SYNTAXES else None
    if not isinstance(data, bytes | bytearray):
        return
    n_frames = int(ds.get("NumberOfFrames") or 1)
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    samples = int(ds.get("SamplesPerPixel") or 1)
    where = {"frame": 0}
    try:
        for frame in generate_frames(bytes(data), number_of_frames=n_frames):
            where["frame"] += 1
            check_codestream(frame, rows, cols, samples)
    except _Bad as e:
        raise DicomError(
            f"{path}: {_PIXEL_DATA} frame {where['frame']} is damaged JPEG 2000 ({e}); refused before "
            "decoding (a decoder can hang on it); export the image again"
        ) from e
    except (ValueError, struct.error) as e:
        raise DicomError(
            f"{path}: {_PIXEL_DATA} is not valid encapsulated JPEG 2000 ({type(e).__name__}: {e})"
        ) from e
