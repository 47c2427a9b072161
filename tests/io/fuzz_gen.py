"""A seeded generator of mutated scan inputs of every kind medzsad reads.

Seeds are small valid inputs (single-frame, RLE, JPEG-LS, JPEG 2000, enhanced and deflated DICOM, a DICOM
series, a zip export, a DICOMDIR set, NIfTI and ``.nii.gz``, NRRD, MHA, MHD + raw, PNG, JPEG,
TIFF). Case ``i`` of seed ``s`` picks seed input ``i % n`` and applies 1-3 mutations drawn from
``random.Random(s * 1_000_003 + i)``: bit flips, overwrites with boundary values (aimed at the
header half the time), truncation, chunk deletion/duplication, hostile numbers in text headers and
hostile DICOM element values. The same ``(seed, i)`` always writes the same bytes.
"""

from __future__ import annotations

import io
import random
import re
import shutil
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import hostile_inputs as h
import numpy as np
import pydicom
from dicom_factory import SeriesSpec, write_enhanced, write_series
from PIL import Image

HOSTILE_NUMBERS = (
    "-3", "0", "-1", "1000000000", "nan", "inf", "-inf", "1e308", "", "abc", "99999999999999999999",
    "65536", "2147483648", "1A", "1\\2", "0.0",
)  # fmt: skip
DICOM_KEYWORDS = (
    "NumberOfFrames", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "SamplesPerPixel",
    "PixelRepresentation", "RescaleSlope", "RescaleIntercept", "PixelSpacing", "ImagePositionPatient",
    "ImageOrientationPatient", "SliceThickness", "SpacingBetweenSlices", "PhotometricInterpretation",
    "InstanceNumber", "SeriesInstanceUID", "StudyInstanceUID", "Modality", "PlanarConfiguration",
)  # fmt: skip
_PACKS = (
    b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\xff\x7f", b"\x00\x80",
    struct.pack("<i", -3), struct.pack("<I", 0x7FFFFFFF), struct.pack("<I", 0x80000000),
    struct.pack("<I", 1_000_000_000), struct.pack("<f", float("nan")), struct.pack("<f", float("inf")),
    struct.pack("<d", 1e308), struct.pack("<h", 255), struct.pack("<h", 0), struct.pack("<h", -1),
)  # fmt: skip


def _dicom(folder: Path, **kw: object) -> bytes:
    p = write_series(folder, SeriesSpec(n_slices=1, rows=16, cols=12, **kw))[0]  # type: ignore[arg-type]
    return p.read_bytes()


def build_seeds(folder: Path) -> dict[str, dict[str, bytes]]:
    """Seed inputs: name -> {relative file name: bytes} (one file, or several for a folder input)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "_tmp"
    seeds: dict[str, dict[str, bytes]] = {}
    seeds["dcm"] = {"IM1.dcm": _dicom(tmp / "a")}
    seeds["dcm_rle"] = {
        "IM1": write_series(tmp / "b", SeriesSpec(n_slices=1), compress=pydicom.uid.RLELossless)[
            0
        ].read_bytes()
    }
    seeds["dcm_jls"] = {
        "IM1": write_series(tmp / "c", SeriesSpec(n_slices=1), compress=pydicom.uid.JPEGLSLossless)[
            0
        ].read_bytes()
    }
    seeds["dcm_j2k"] = {
        "IM1": write_series(
            tmp / "j", SeriesSpec(n_slices=1, rows=64, cols=64), compress=pydicom.uid.JPEG2000Lossless
        )[0].read_bytes()
    }
    seeds["dcm_enh"] = {"enh.dcm": write_enhanced(tmp / "d" / "enh.dcm", SeriesSpec(n_slices=3)).read_bytes()}
    seeds["dcm_deflate"] = {"defl.dcm": h.dicom_deflate_bomb(_mk(tmp / "e"), 0).read_bytes()}
    series = write_series(tmp / "f", SeriesSpec(n_slices=3))
    seeds["dcm_series"] = {p.name: p.read_bytes() for p in series}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in series:
            zf.writestr(f"export/{p.name}", p.read_bytes())
    seeds["zip"] = {"export.zip": buf.getvalue()}
    dd = h.dicomdir_cyclic(_mk(tmp / "g")).parent
    seeds["dicomdir"] = {str(p.relative_to(dd)): p.read_bytes() for p in sorted(dd.rglob("*")) if p.is_file()}
    seeds["nii"] = {"vol.nii": h.nifti_bytes((6, 5, 4), np.int16)}
    seeds["nii_gz"] = {"vol.nii.gz": h.nifti_bytes((6, 5, 4), np.float32, gz=True)}
    seeds["nrrd"] = {"vol.nrrd": h.nrrd_valid(_mk(tmp / "h")).read_bytes()}
    seeds["mha"] = {"vol.mha": h.mha_valid(_mk(tmp / "i")).read_bytes()}
    seeds["mhd"] = {
        "vol.mhd": b"ObjectType = Image\nNDims = 3\nDimSize = 3 4 5\nElementType = MET_SHORT\n"
        b"ElementSpacing = 1 1 2\nElementDataFile = vol.raw\n",
        "vol.raw": np.arange(60, dtype="<i2").tobytes(),
    }
    for fmt, name in (("PNG", "img.png"), ("JPEG", "img.jpg"), ("TIFF", "img.tif")):
        b = io.BytesIO()
        Image.fromarray((np.arange(24 * 20) % 251).astype(np.uint8).reshape(20, 24)).save(b, fmt)
        seeds[fmt.lower()] = {name: b.getvalue()}
    shutil.rmtree(tmp)
    return seeds


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _flip(data: bytearray, rng: random.Random, head: int) -> None:
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)


def _overwrite(data: bytearray, rng: random.Random, head: int) -> None:
    pack = rng.choice(_PACKS)
    span = min(head, len(data)) if rng.random() < 0.5 else len(data)
    at = rng.randrange(max(1, span - len(pack))) & ~1
    data[at : at + len(pack)] = pack


def _truncate(data: bytearray, rng: random.Random, head: int) -> None:
    del data[rng.randrange(len(data)) :]


def _splice(data: bytearray, rng: random.Random, head: int) -> None:
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.randint(1, 512))
    if rng.random() < 0.5:
        del data[a:b]
    else:
        data[a:a] = data[a:b] * rng.randint(1, 4)


_NUM = re.compile(rb"(?<=[=: (,])-?\d+(\.\d+)?")


def _text_field(data: bytearray, rng: random.Random, head: int) -> None:
    """Replace one number of a text header (NRRD, MetaImage) with a hostile value."""
    text = bytes(data[:head])
    spots = list(_NUM.finditer(text))
    if not spots:
        _overwrite(data, rng, head)
        return
    m = rng.choice(spots)
    data[m.start() : m.end()] = rng.choice(HOSTILE_NUMBERS).encode()


def _dicom_tag(data: bytearray, rng: random.Random, head: int) -> None:
    """Set one numeric/identifying DICOM element to a hostile value (written unvalidated)."""
    from pydicom import config
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(bytes(data)), force=True)
        kw = rng.choice(DICOM_KEYWORDS)
        tag = tag_for_keyword(kw)
        assert tag is not None
        vr = dictionary_VR(tag)
        value = rng.choice(HOSTILE_NUMBERS)
        raw = value.encode() + (b" " if len(value) % 2 else b"")
        if vr in ("US", "SS", "UL", "SL"):
            raw = struct.pack("<H" if vr in ("US", "SS") else "<I", rng.choice((0, 1, 3, 255, 65535)))
        ds[tag] = pydicom.dataelem.RawDataElement(tag, vr, len(raw), raw, 0, False, True)
        out = io.BytesIO()
        old = config.settings.writing_validation_mode
        config.settings.writing_validation_mode = config.IGNORE
        try:
            ds.save_as(out, enforce_file_format=False)
        finally:
            config.settings.writing_validation_mode = old
        data[:] = out.getvalue()
    except Exception:  # noqa: BLE001 - a seed already broken by an earlier mutation: mutate bytes
        _overwrite(data, rng, head)


_BYTE_OPS: tuple[Callable[[bytearray, random.Random, int], None], ...] = (
    _flip,
    _overwrite,
    _truncate,
    _splice,
)


def _ops_for(name: str) -> tuple[Callable[[bytearray, random.Random, int], None], ...]:
    if name.endswith((".nrrd", ".mha", ".mhd")):
        return _BYTE_OPS + (_text_field, _text_field, _text_field)
    if name.endswith(".zip") or name.lower().endswith((".png", ".jpg", ".tif", ".nii", ".gz", ".raw")):
        return _BYTE_OPS
    return _BYTE_OPS + (_dicom_tag, _dicom_tag)


def _head_size(name: str) -> int:
    if name.endswith((".nii", ".gz")):
        return 352
    if name.endswith((".png", ".jpg", ".tif")):
        return 64
    return 1024


def write_case(seeds: dict[str, dict[str, bytes]], seed: int, i: int, out: Path) -> Path:
    """Write case ``i`` of ``seed`` under ``out``; returns the input path to give ``discover``."""
    rng = random.Random(seed * 1_000_003 + i)
    names = sorted(seeds)
    kind = names[i % len(names)]
    files = dict(seeds[kind])
    target = rng.choice(sorted(k for k in files if not k.endswith(".raw")) or sorted(files))
    data = bytearray(files[target])
    if target.endswith(".gz") and rng.random() < 0.5:
        import gzip

        inner = bytearray(gzip.decompress(bytes(data)))
        for _ in range(rng.randint(1, 3)):
            if inner:
                rng.choice(_BYTE_OPS[:2])(inner, rng, 352)
        data = bytearray(gzip.compress(bytes(inner), 1))
    else:
        for _ in range(rng.randint(1, 3)):
            if data:
                rng.choice(_ops_for(target))(data, rng, _head_size(target))
    files[target] = bytes(data)
    case = out / f"{seed}-{i:05d}-{kind}"
    case.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        p = case / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    if kind == "dicomdir":
        return case / "DICOMDIR"
    if len(files) == 1 and kind not in ("dcm", "dcm_rle", "dcm_jls", "dcm_j2k"):
        return case / next(iter(files))
    return case
