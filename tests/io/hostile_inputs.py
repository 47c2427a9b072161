"""Reproducers of issue 16 (hostile and broken inputs), each a small file written on demand.

Every function writes one input under ``folder`` and returns its path. They are used by the
reproducer tests, the fuzz test (as seeds) and ``bench/fuzz_bench.py``.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from dicom_factory import SeriesSpec, write_series
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless


def nifti_bytes(shape: tuple[int, ...] = (6, 5, 4), dtype: type = np.int16, *, gz: bool = False) -> bytes:
    """A valid small NIfTI-1 file."""
    data = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    raw = nib.Nifti1Image(data, np.diag([0.8, 0.9, 2.0, 1.0])).to_bytes()
    return gzip.compress(raw, 1) if gz else raw


def nifti_claim(folder: Path) -> Path:
    """66-byte ``.nii.gz`` whose header claims 2048 x 2048 x 2560 int16 (21 GB)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((2048, 2048, 2560))
    p = folder / "claim.nii.gz"
    p.write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4, 9))
    return p


def nifti_gzip_bomb(folder: Path, zeros_mib: int = 64) -> Path:
    """``.nii.gz`` claiming a 4x4x4 volume followed by ``zeros_mib`` MiB of zeros (a gzip bomb)."""
    raw = nifti_bytes((4, 4, 4), np.int16)
    p = folder / "bomb.nii.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with p.open("wb") as fh:
        fh.write(comp.compress(raw))
        block = b"\0" * (1 << 20)
        for _ in range(zeros_mib):
            fh.write(comp.compress(block))
        fh.write(comp.flush())
    return p


def nifti_datatype(folder: Path, code: int = 255) -> Path:
    """``.nii`` with an unknown ``datatype`` code."""
    raw = bytearray(nifti_bytes((4, 4, 4), np.float32))
    struct.pack_into("<h", raw, 70, code)
    p = folder / f"dt{code}.nii"
    p.write_bytes(bytes(raw))
    return p


def nifti_bad_dim0(folder: Path) -> Path:
    """``.nii`` with ``dim[0] = 9`` (nibabel's HeaderDataError)."""
    raw = bytearray(nifti_bytes((4, 4, 4), np.float32))
    struct.pack_into("<h", raw, 40, 9)
    p = folder / "dim0.nii"
    p.write_bytes(bytes(raw))
    return p


def cifti(folder: Path) -> Path:
    """nibabel's own CIFTI-2 test file ``row_major.dconn.nii`` (no affine)."""
    src = Path(nib.__file__).parent / "tests" / "data" / "row_major.dconn.nii"
    p = folder / "row_major.dconn.nii"
    p.write_bytes(src.read_bytes())
    return p


def mhd_external(folder: Path, target: str = "/dev/zero") -> Path:
    """``.mhd`` whose ElementDataFile is outside its folder."""
    p = folder / "zero.mhd"
    p.write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 2000 2000 2000\nElementType = MET_SHORT\n"
        f"ElementDataFile = {target}\n"
    )
    return p


def mha_ndims(folder: Path, ndims: str = "-3") -> Path:
    """``.mha`` with a hostile ``NDims`` (``-3`` segfaults SimpleITK 2.5)."""
    p = folder / f"ndims{ndims}.mha"
    p.write_bytes(
        f"ObjectType = Image\nNDims = {ndims}\nDimSize = 2 2 2\nElementType = MET_UCHAR\n"
        "ElementDataFile = LOCAL\n".encode()
        + bytes(8)
    )
    return p


def mha_valid(folder: Path, name: str = "ok.mha") -> Path:
    """A valid 3x4x5 uchar ``.mha``."""
    p = folder / name
    p.write_bytes(
        b"ObjectType = Image\nNDims = 3\nDimSize = 3 4 5\nElementType = MET_UCHAR\n"
        b"ElementSpacing = 1 1 2\nElementDataFile = LOCAL\n" + bytes(range(60))
    )
    return p


def nrrd_valid(folder: Path, name: str = "ok.nrrd") -> Path:
    """A valid 3x4x5 short raw ``.nrrd``."""
    p = folder / name
    head = (
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 3 4 5\nspace: left-posterior-superior\n"
        "space directions: (1,0,0) (0,1,0) (0,0,2)\nspace origin: (0,0,0)\nendian: little\n"
        "encoding: raw\n\n"
    )
    p.write_bytes(head.encode() + np.arange(60, dtype="<i2").tobytes())
    return p


def dicom_series(folder: Path, n: int = 3, **spec: object) -> list[Path]:
    """A small valid CT series."""
    return write_series(folder, SeriesSpec(n_slices=n, **spec))  # type: ignore[arg-type]


def dicom_edit(folder: Path, name: str, **tags: object) -> Path:
    """A one-slice CT file with some elements replaced (raw strings allowed, e.g. ``'1A'``)."""
    src = dicom_series(folder / f"_{name}", 1)[0]
    ds = pydicom.dcmread(src)
    for key, value in tags.items():
        tag = pydicom.datadict.tag_for_keyword(key)
        vr = pydicom.datadict.dictionary_VR(key)
        if value is None:
            delattr(ds, key)
        elif isinstance(value, str):  # written raw, so that invalid strings ('1A') survive
            raw = value.encode() + (b" " if len(value) % 2 else b"")
            ds[tag] = pydicom.dataelem.RawDataElement(tag, vr, len(raw), raw, 0, False, True)
        else:
            ds.add_new(key, vr, value)
    p = folder / name
    old = pydicom.config.settings.writing_validation_mode
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        ds.save_as(p, enforce_file_format=True)
    finally:
        pydicom.config.settings.writing_validation_mode = old
    os.remove(src)
    os.rmdir(folder / f"_{name}")
    return p


def dicom_frames_claim(folder: Path) -> Path:
    """2 KB DICOM claiming NumberOfFrames = 1000000000."""
    return dicom_edit(folder, "frames.dcm", NumberOfFrames="1000000000")


def dicom_deflate_bomb(folder: Path, zeros_mib: int = 96) -> Path:
    """Deflated explicit VR DICOM whose data set inflates to ``zeros_mib`` MiB (a private OB element)."""
    src = dicom_series(folder / "_deflate", 1)[0]
    ds = pydicom.dcmread(src)
    ds.add_new(0x00291010, "OB", b"\0" * (zeros_mib << 20))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    p = folder / "deflated.dcm"
    ds.save_as(p, enforce_file_format=True)
    os.remove(src)
    os.rmdir(folder / "_deflate")
    return p


def dicom_rle_truncated(folder: Path) -> Path:
    """RLE Lossless DICOM whose compressed frame is cut short (panics the Rust RLE decoder)."""
    src = dicom_series(folder / "_rle", 1, rows=64, cols=64)[0]
    ds = pydicom.dcmread(src)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    frag = bytearray(ds.PixelData)
    # keep the item structure but cut the RLE segment data: header says more than is there
    ds.PixelData = bytes(frag[: len(frag) // 2]) + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    p = folder / "rle.dcm"
    ds.save_as(p, enforce_file_format=True)
    os.remove(src)
    os.rmdir(folder / "_rle")
    return p


def dicom_nested(folder: Path, depth: int = 3000) -> Path:
    """DICOM with a sequence nested ``depth`` deep (RecursionError in pydicom)."""
    item = b""
    for _ in range(depth):
        # (0008,1115) ReferencedSeriesSequence SQ, undefined length, one item of undefined length
        item = (
            b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff"
            + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
            + item
            + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
            + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
        )
    src = dicom_series(folder / "_nested", 1)[0]
    raw = src.read_bytes()
    os.remove(src)
    os.rmdir(folder / "_nested")
    # the element goes right after the file meta (group 0008 sorts first in the data set)
    meta_end = 144 + struct.unpack_from("<I", raw, 140)[0]
    p = folder / "nested.dcm"
    p.write_bytes(raw[:meta_end] + item + raw[meta_end:])
    return p


def dicom_many_items(folder: Path, n: int = 200_000) -> Path:
    """DICOM with one sequence of ``n`` empty items."""
    body = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" * n
    elem = b"\x08\x00\x15\x11SQ\x00\x00" + struct.pack("<I", len(body)) + body
    src = dicom_series(folder / "_items", 1)[0]
    raw = src.read_bytes()
    os.remove(src)
    os.rmdir(folder / "_items")
    meta_end = 144 + struct.unpack_from("<I", raw, 140)[0]
    p = folder / "items.dcm"
    p.write_bytes(raw[:meta_end] + elem + raw[meta_end:])
    return p


def dicomdir_cyclic(folder: Path) -> Path:
    """A DICOMDIR (written by pydicom's FileSet) whose first record's next-record offset points to itself."""
    from pydicom.fileset import FileSet

    files = dicom_series(folder / "_src", 2)
    fs = FileSet()
    for f in files:
        ds = pydicom.dcmread(f)
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", "A1"
        ds.PatientBirthDate, ds.PatientSex = "", ""
        fs.add(ds)
    out = folder / "dd"
    fs.write(out)
    dd = out / "DICOMDIR"
    ds = pydicom.dcmread(dd)
    recs = ds.DirectoryRecordSequence
    first = ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity
    for r in recs:
        r.OffsetOfTheNextDirectoryRecord = first
        r.OffsetOfReferencedLowerLevelDirectoryEntity = first
    ds.save_as(dd, enforce_file_format=False)
    for f in files:
        os.remove(f)
    os.rmdir(folder / "_src")
    return dd


def zip_with(folder: Path, members: dict[str, bytes], name: str = "x.zip") -> Path:
    """A zip archive (deflated) holding ``members``."""
    p = folder / name
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in members.items():
            zf.writestr(k, v)
    return p


def zip_declared_size(folder: Path, size: int = 2 << 30) -> Path:
    """A zip whose one DICOM member declares ``size`` bytes (central directory patched)."""
    src = dicom_series(folder / "_z", 1)[0]
    p = zip_with(folder, {"IM0001": src.read_bytes()}, "big.zip")
    os.remove(src)
    os.rmdir(folder / "_z")
    raw = bytearray(p.read_bytes())
    cd = raw.rfind(b"PK\x01\x02")
    struct.pack_into("<I", raw, cd + 24, size)  # uncompressed size in the central directory
    p.write_bytes(bytes(raw))
    return p


def zip_flags(folder: Path, *, encrypted: bool = False, method: int | None = None) -> Path:
    """A zip whose DICOM member is marked encrypted or uses an unsupported compression ``method``."""
    src = dicom_series(folder / "_e", 1)[0]
    p = zip_with(folder, {"IM0001": src.read_bytes()}, "enc.zip" if encrypted else f"m{method}.zip")
    os.remove(src)
    os.rmdir(folder / "_e")
    raw = bytearray(p.read_bytes())
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = raw.find(sig)
        if encrypted:
            struct.pack_into("<H", raw, at + flag_at, struct.unpack_from("<H", raw, at + flag_at)[0] | 1)
        if method is not None:
            struct.pack_into("<H", raw, at + method_at, method)
    p.write_bytes(bytes(raw))
    return p


def png_claim(folder: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """PNG whose IHDR claims ``width`` x ``height`` pixels (Pillow's decompression bomb)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, "PNG")
    raw = bytearray(buf.getvalue())
    struct.pack_into(">II", raw, 16, width, height)
    struct.pack_into(">I", raw, 29, zlib.crc32(bytes(raw[12:29])))
    p = folder / "bomb.png"
    p.write_bytes(bytes(raw))
    return p


def symlink_loop(folder: Path) -> Path:
    """A folder holding a valid NIfTI and a symlink loop (``a -> b -> a``)."""
    d = folder / "loop"
    d.mkdir()
    (d / "ok.nii").write_bytes(nifti_bytes())
    os.symlink("b", d / "a")
    os.symlink("a", d / "b")
    return d
