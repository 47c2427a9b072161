"""Issue 16 reproducers: each hostile input gives a typed error (naming file and field) or a right volume."""

from __future__ import annotations

import os
from pathlib import Path

import hostile_inputs as h
import numpy as np
import pydicom
import pytest

from medzsad.errors import (
    ArchiveError,
    DecoderError,
    DicomError,
    InputError,
    NiftiError,
    ResourceLimitError,
    SourceChangedError,
    UnsafePathError,
    UnsupportedInputError,
)
from medzsad.io.dicom_common import read_dataset
from medzsad.io.discovery import discover
from medzsad.io.guard import foreign_errors
from medzsad.io.limits import MIB, ReadLimits, current_limits, use_limits
from medzsad.io.readers import load_volume

SMALL = ReadLimits.of_bytes(64 * MIB)


@pytest.fixture(autouse=True)
def _small_limits():
    with use_limits(SMALL):
        yield


def _skipped_reason(found, path: Path) -> str:
    reasons = [s.reason for s in found.skipped if s.path == str(path)]
    assert reasons, f"{path} not recorded as skipped: {found.skipped}"
    return reasons[0]


def test_default_limits_follow_available_memory() -> None:
    d = ReadLimits.default()
    assert 256 * MIB <= d.max_voxel_bytes <= 64 << 30
    assert d.max_decompressed_bytes > d.max_voxel_bytes
    assert current_limits() is SMALL


def test_limit_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from medzsad.errors import ConfigError

    monkeypatch.setenv("MEDZSAD_MAX_SCAN_GIB", "0.5")
    assert ReadLimits.default().max_voxel_bytes == 512 * MIB
    monkeypatch.setenv("MEDZSAD_MAX_SCAN_GIB", "lots")
    with pytest.raises(ConfigError, match="MEDZSAD_MAX_SCAN_GIB='lots'"):
        ReadLimits.default()


def test_nifti_header_claim_is_refused_before_allocation(tmp_path: Path) -> None:
    p = h.nifti_claim(tmp_path)
    assert p.stat().st_size < 100
    with pytest.raises(ResourceLimitError, match=r"dim\[1\.\.\] x datatype claims 40 GiB") as e:
        load_volume(p)
    assert str(p) in str(e.value)
    assert "claims 40 GiB" in _skipped_reason(discover(p), p)


def test_gzip_bomb_after_a_small_claim_loads_only_the_claim(tmp_path: Path) -> None:
    p = h.nifti_gzip_bomb(tmp_path, zeros_mib=32)
    v = load_volume(p)
    assert v.data.shape == (4, 4, 4)
    np.testing.assert_array_equal(v.data, np.arange(64, dtype=np.float32).reshape(4, 4, 4))


def test_gzip_bomb_claiming_more_than_the_limit(tmp_path: Path) -> None:
    p = h.nifti_gzip_bomb(tmp_path, zeros_mib=1)
    with use_limits(ReadLimits.of_bytes(64)), pytest.raises(ResourceLimitError, match="dim"):
        load_volume(p)


@pytest.mark.parametrize("code", [255, 0, 3])
def test_nifti_unknown_datatype(tmp_path: Path, code: int) -> None:
    p = h.nifti_datatype(tmp_path, code)
    with pytest.raises(UnsupportedInputError, match=f"datatype \\(header field\\) is {code}"):
        load_volume(p)
    assert "datatype" in _skipped_reason(discover(tmp_path), p)


def test_nifti_bad_dim0_is_a_nifti_error(tmp_path: Path) -> None:
    p = h.nifti_bad_dim0(tmp_path)
    with pytest.raises(NiftiError, match=r"dim\[0\] \(number of dimensions\) is 9; expected 1\.\.7"):
        load_volume(p)


def test_cifti_is_unsupported_and_skipped(tmp_path: Path) -> None:
    p = h.cifti(tmp_path)
    (tmp_path / "ok.nii").write_bytes(h.nifti_bytes())
    with pytest.raises(UnsupportedInputError, match="CIFTI"):
        load_volume(p)
    found = discover(tmp_path)
    assert [s.kind for s in found.studies] == ["nifti"]
    assert "CIFTI" in _skipped_reason(found, p)


@pytest.mark.parametrize("target", ["/dev/zero", "../outside.raw", "/etc/hostname"])
def test_mhd_data_file_outside_the_folder(tmp_path: Path, target: str) -> None:
    (tmp_path / "outside.raw").write_bytes(bytes(16))
    inner = tmp_path / "in"
    inner.mkdir()
    p = h.mhd_external(inner, target)
    with pytest.raises(UnsafePathError, match="ElementDataFile = .* points outside the header's folder"):
        load_volume(p)
    assert "outside" in _skipped_reason(discover(inner), p)


def test_mhd_with_data_file_inside_loads(tmp_path: Path) -> None:
    (tmp_path / "v.raw").write_bytes(np.arange(24, dtype="<i2").tobytes())
    p = tmp_path / "v.mhd"
    p.write_text("NDims = 3\nDimSize = 2 3 4\nElementType = MET_SHORT\nElementDataFile = v.raw\n")
    v = load_volume(p)
    assert v.data.shape == (2, 3, 4)
    assert v.data[1, 2, 3] == 23


@pytest.mark.parametrize("ndims", ["-3", "0", "99", "x"])
def test_mha_hostile_ndims_never_reaches_simpleitk(tmp_path: Path, ndims: str) -> None:
    p = h.mha_ndims(tmp_path, ndims)
    with pytest.raises(InputError, match="NDims"):
        load_volume(p)
    assert "NDims" in _skipped_reason(discover(tmp_path), p)


def test_mha_and_nrrd_size_claims(tmp_path: Path) -> None:
    p = tmp_path / "big.mha"
    p.write_bytes(b"NDims = 3\nDimSize = 4000 4000 4000\nElementType = MET_SHORT\nElementDataFile = LOCAL\n")
    with pytest.raises(ResourceLimitError, match="DimSize x ElementType claims 238 GiB"):
        load_volume(p)
    q = tmp_path / "big.nrrd"
    q.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4000 4000 4000\nencoding: raw\n\n")
    with pytest.raises(ResourceLimitError, match="sizes x type"):
        load_volume(q)


def test_valid_mha_and_nrrd_still_load(tmp_path: Path) -> None:
    assert load_volume(h.mha_valid(tmp_path)).data.shape == (3, 4, 5)
    v = load_volume(h.nrrd_valid(tmp_path))
    assert v.data.shape == (3, 4, 5)
    assert v.data[2, 3, 4] == 59


def test_dicom_number_of_frames_claim(tmp_path: Path) -> None:
    p = h.dicom_frames_claim(tmp_path)
    assert p.stat().st_size < 3000
    with pytest.raises(ResourceLimitError, match=r"NumberOfFrames \(0028,0008\) is 1000000000"):
        load_volume(p)


@pytest.mark.parametrize(
    ("tags", "match"),
    [
        ({"NumberOfFrames": "1A"}, r"NumberOfFrames \(0028,0008\) is not a whole number \(found '1A'\)"),
        ({"RescaleSlope": ["1", "2"]}, r"RescaleSlope \(0028,1053\) has 2 values"),
        ({"RescaleSlope": "NaN"}, r"(?i)RescaleSlope \(0028,1053\) is 'nan'; expected a finite number"),
        (
            {"RescaleIntercept": "inf"},
            r"(?i)RescaleIntercept \(0028,1052\) is 'inf'; expected a finite number",
        ),
        ({"Rows": 0}, r"Rows \(0028,0010\)"),
    ],
)
def test_numeric_dicom_tags_are_checked(tmp_path: Path, tags: dict[str, object], match: str) -> None:
    p = h.dicom_edit(tmp_path, "x.dcm", **tags)
    with pytest.raises(DicomError, match=match) as e:
        load_volume(p)
    assert str(p) in str(e.value)


def test_deflated_dicom_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    p = h.dicom_deflate_bomb(tmp_path, zeros_mib=16)
    assert p.stat().st_size < 100_000
    limits = SMALL.replace(max_decompressed_bytes=4 * MIB)
    with use_limits(limits), pytest.raises(ResourceLimitError, match="deflated data set claims"):
        load_volume(p)
    v = load_volume(p)  # within the default test limits it is an ordinary image
    assert v.data.shape == (12, 16, 1)


def test_truncated_rle_is_typed(tmp_path: Path) -> None:
    with pytest.raises(DicomError, match="transfer syntax RLE Lossless"):
        load_volume(h.dicom_rle_truncated(tmp_path))


def test_decoder_panic_is_a_typed_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyo3's PanicException derives from BaseException; it must not escape ``except Exception``."""

    class PanicException(BaseException):
        pass

    def panic(self: object) -> None:
        raise PanicException("called `Option::unwrap()` on a `None` value")

    p = h.dicom_series(tmp_path, 1)[0]
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(panic))
    with pytest.raises(DecoderError, match="the decoder crashed .*PanicException") as e:
        load_volume(p)
    assert isinstance(e.value.__cause__, PanicException)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_interrupts_pass_through(exc: type[BaseException]) -> None:
    with pytest.raises(exc), foreign_errors("f", "read"):
        raise exc()


def test_nested_sequences_are_a_typed_error(tmp_path: Path) -> None:
    """Run in a worker process: while the RecursionError unwinds, pydicom's generators raise
    "unraisable" RecursionErrors that pytest's own hook cannot format, failing unrelated tests."""
    from fuzz_harness import run_cases

    p = h.dicom_nested(tmp_path, 3000)
    (result,) = run_cases([str(p)], timeout_s=60)
    assert (result.outcome, result.detail) == ("typed", "DecoderError"), result


def test_unknown_vr_is_a_dicom_error(tmp_path: Path) -> None:
    p = h.dicom_series(tmp_path, 1)[0]
    raw = bytearray(p.read_bytes())
    at = raw.find(b"\x08\x00\x60\x00CS")  # Modality
    raw[at + 4 : at + 6] = b"ZZ"
    p.write_bytes(bytes(raw))
    found = discover(tmp_path)
    assert found.studies == ()
    assert "Unknown Value Representation 'ZZ' in tag (0008,0060)" in _skipped_reason(found, p)
    with pytest.raises(InputError, match="Unknown Value Representation 'ZZ'"):
        load_volume(p)  # pydicom converts the element lazily: the error comes when it is used


def test_zip_member_declared_too_large_is_skipped_without_reading(tmp_path: Path) -> None:
    p = h.zip_declared_size(tmp_path)
    found = discover(p)
    assert found.studies == ()
    assert "zip file_size claims 2 GiB" in found.skipped[0].reason
    with pytest.raises(InputError, match="no usable study.*zip file_size"):
        load_volume(p)


def test_zip_member_actually_over_the_limit(tmp_path: Path) -> None:
    p = h.zip_with(tmp_path, {"a/IM1": b"\0" * (8 * MIB)})
    with use_limits(SMALL.replace(max_decompressed_bytes=MIB)):
        found = discover(p)
    assert "uncompressed data, over the read limit" in found.skipped[0].reason


@pytest.mark.parametrize(("encrypted", "method"), [(True, None), (False, 97)])
def test_encrypted_or_unsupported_zip_member(tmp_path: Path, encrypted: bool, method: int | None) -> None:
    p = h.zip_flags(tmp_path, encrypted=encrypted, method=method)
    found = discover(p)
    assert found.studies == ()
    reason = found.skipped[0].reason
    assert ("encrypted" in reason) if encrypted else ("compression" in reason.lower())
    with pytest.raises(ArchiveError, match="encrypted" if encrypted else "NotImplementedError"):
        read_dataset(f"{p}!/IM0001", header_only=True)


def test_png_decompression_bomb(tmp_path: Path) -> None:
    p = h.png_claim(tmp_path)
    with pytest.raises(ResourceLimitError, match="10000000000 pixels"):
        load_volume(p)
    assert "too large" in _skipped_reason(discover(tmp_path), p)
    q = h.png_claim(tmp_path, 9000, 9000)  # under Pillow's own limit, over ours (64 MiB)
    with pytest.raises(ResourceLimitError, match="image size 9000 x 9000 claims"):
        load_volume(q)


def test_symlink_loop_is_skipped(tmp_path: Path) -> None:
    d = h.symlink_loop(tmp_path)
    found = discover(d)
    assert [s.kind for s in found.studies] == ["nifti"]
    assert all("symbolic links" in s.reason for s in found.skipped) and len(found.skipped) == 2


def test_special_files_are_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.dcm")
    (tmp_path / "ok.nii").write_bytes(h.nifti_bytes())
    found = discover(tmp_path)
    assert len(found.studies) == 1
    assert "not a regular file" in _skipped_reason(found, tmp_path / "pipe.dcm")


def test_cyclic_dicomdir_is_read_in_record_order(tmp_path: Path) -> None:
    dd = h.dicomdir_cyclic(tmp_path)
    found = discover(dd)
    assert len(found.studies) == 1
    assert found.studies[0].series[0].n_instances == 2
    assert load_volume(found.studies[0].series[0]).data.shape[2] == 2


def test_dicomdir_reference_outside_its_folder(tmp_path: Path) -> None:
    dd = h.dicomdir_cyclic(tmp_path)
    ds = pydicom.dcmread(dd)
    for r in ds.DirectoryRecordSequence:
        if "ReferencedFileID" in r:
            r.ReferencedFileID = ["..", "..", "etc", "hostname"]
    ds.save_as(dd, enforce_file_format=False)
    found = discover(dd)
    assert found.studies == ()
    assert any("outside its folder" in s.reason for s in found.skipped)


def test_slices_deleted_after_discovery(tmp_path: Path) -> None:
    files = h.dicom_series(tmp_path / "s", 4)
    ref = discover(tmp_path / "s").studies[0].series[0]
    os.remove(files[1])
    with pytest.raises(SourceChangedError, match="1 of the 4 files of the series no longer exist"):
        load_volume(ref)


def test_nan_slope_never_gives_a_nan_volume(tmp_path: Path) -> None:
    h.dicom_series(tmp_path / "s", 3)
    for f in (tmp_path / "s").iterdir():
        ds = pydicom.dcmread(f)
        ds.RescaleSlope = "NaN"
        ds.save_as(f)
    with pytest.raises(DicomError, match="RescaleSlope"):
        load_volume(tmp_path / "s")


def _mixed_folder(root: Path) -> Path:
    """A valid NIfTI and a DICOM series next to every kind of bad file."""
    d = h.symlink_loop(root)
    h.cifti(d)
    h.nifti_datatype(d)
    h.nifti_claim(d)
    h.mha_ndims(d)
    h.zip_flags(d, encrypted=True)
    h.png_claim(d)
    h.dicom_series(d / "series", 6)  # enough slices for the CT presets: inspect's exit is about the files
    return d


def test_discover_and_inspect_never_raise_for_one_bad_file(tmp_path: Path) -> None:
    from medzsad.io.inspect import inspect_path

    d = _mixed_folder(tmp_path)
    found = discover(d)
    assert sorted(s.kind for s in found.studies) == ["dicom", "nifti"]
    assert len(found.skipped) >= 8
    report = inspect_path(d)
    assert all(s.volume is not None for s in report.studies)
    assert "CIFTI" in report.to_text()


def test_cli_inspect_with_bad_files_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medzsad.cli import main

    d = _mixed_folder(tmp_path)
    assert main(["inspect", str(d), "--json"]) == 0
    out = capsys.readouterr().out
    assert "intent_code 3001" in out and "NDims is -3" in out


def test_overflowing_rescale_is_a_dicom_error(tmp_path: Path) -> None:
    """Found by the fuzz bench: RescaleSlope 1e308 made an all-infinite volume."""
    p = h.dicom_edit(tmp_path, "x.dcm", RescaleSlope="1e308")
    with pytest.raises(DicomError, match="rescaled values are NaN/infinite"):
        load_volume(p)


def test_dicomdir_file_id_with_nul_byte(tmp_path: Path) -> None:
    """Found by the fuzz bench: a NUL byte in ReferencedFileID made os.path raise ValueError."""
    dd = h.dicomdir_cyclic(tmp_path)
    raw = dd.read_bytes()
    at = raw.find(b"IM00000")
    assert at > 0
    dd.write_bytes(raw[:at] + b"\x00" + raw[at + 1 :])
    found = discover(dd)
    assert any("NUL byte" in s.reason for s in found.skipped)


def test_frame_count_must_fit_the_pixel_data(tmp_path: Path) -> None:
    """Found by the fuzz bench: 65536 frames claimed in 502 bytes of RLE data took seconds to fail."""
    native = h.dicom_edit(tmp_path, "native.dcm", NumberOfFrames="500")
    with pytest.raises(DicomError, match=r"PixelData \(7FE0,0010\) has 384 bytes; 500 frame\(s\)"):
        load_volume(native)
    rle = h.write_series(tmp_path / "rle", h.SeriesSpec(n_slices=1), compress=pydicom.uid.RLELossless)[0]
    ds = pydicom.dcmread(rle)
    ds.NumberOfFrames = 65536
    ds.save_as(rle)
    with pytest.raises(DicomError, match="is 65536 but the encapsulated PixelData"):
        load_volume(rle)


@pytest.mark.parametrize("name", ["scan.dcm", "DICOMDIR", "x.nii.gz"])
def test_a_fifo_given_as_the_input_never_blocks(tmp_path: Path, name: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    found = discover(fifo)
    assert found.studies == () and "not a regular file" in found.skipped[0].reason
    with pytest.raises(InputError, match="no usable study"):
        load_volume(fifo)
