"""Issue 22 items 8, 15 and 16: refusals that say what is really wrong, in seconds, naming file and tag.

Every case starts from a real file of pydicom or pydicom-data.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from real_studies import ct5n, new_study_uid, real, restamp

from medzsad.errors import DicomError, NiftiError
from medzsad.io.discovery import discover
from medzsad.io.readers import load_volume

_PIXEL_TAG = b"\xe0\x7f\x10\x00"


def _cut(tmp_path: Path, name: str, at: int) -> Path:
    data = real(name).read_bytes()
    out = tmp_path / f"cut_{at}.dcm"
    out.write_bytes(data[: data.find(_PIXEL_TAG) + at])
    return out


def test_a_truncated_enhanced_mr_is_called_truncated_not_no_image(tmp_path: Path) -> None:
    inside = _cut(tmp_path, "emri_small.dcm", 6)  # ends inside the PixelData element's header
    with pytest.raises(DicomError, match=r"truncated: it ends inside the PixelData \(7FE0,0010\) element"):
        load_volume(str(inside))
    mid = _cut(tmp_path, "emri_small.dcm", 10)  # pydicom cannot even read the header
    with pytest.raises(DicomError, match="the file is truncated: it ends in the middle of a data element"):
        load_volume(str(mid))
    before = _cut(tmp_path, "emri_small.dcm", 0)  # ends right before it
    with pytest.raises(DicomError) as info:
        load_volume(str(before))
    message = str(info.value)
    assert str(before) in message and "Enhanced MR Image Storage" in message
    assert "truncated before its pixels or a header-only copy" in message and "not an image" not in message


def test_ct_headers_without_pixels_are_called_header_only_copies(tmp_path: Path) -> None:
    ds = pydicom.dcmread(real("CT_small.dcm"))
    for keyword in ("PixelData", "Rows", "Columns"):
        delattr(ds, keyword)
    ds.save_as(tmp_path / "header.dcm")
    (study,) = discover(tmp_path).studies
    why = study.series[0].not_candidate
    assert why.startswith("CT Image Storage without pixel data") and "header-only copy" in why


def test_inspect_of_an_undecodable_jpeg_prints_one_line_not_a_traceback(tmp_path: Path) -> None:
    from pydicom.encaps import encapsulate, generate_fragmented_frames

    ds = pydicom.dcmread(real("SC_rgb_jpeg_dcmtk.dcm"))
    frame = b"".join(next(generate_fragmented_frames(ds.PixelData)))
    ds.PixelData = encapsulate([frame[:100] + b"\xff\xd9"])  # cut in its Huffman tables
    ds.save_as(tmp_path / "broken_jpeg.dcm")
    proc = subprocess.run(
        [sys.executable, "-m", "medzsad", "inspect", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "ERROR pydicom" not in proc.stderr, proc.stderr
    (error,) = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("error:")]
    assert "broken_jpeg.dcm: cannot decode PixelData (7FE0,0010)" in error


def test_the_4d_nifti_hint_names_only_what_exists(tmp_path: Path) -> None:
    path = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 5), np.float32), np.eye(4)), path)
    with pytest.raises(NiftiError) as info:
        load_volume(str(path))
    message = str(info.value)
    assert "pass volume_index" not in message
    assert (
        "save the one to score as its own file" in message and "load_volume(path, volume_index=i)" in message
    )


# --- item 15: a damaged JPEG 2000 file is refused in seconds ------------------------------------

_REPRO = """
import sys, time
from medzsad.io.readers import load_volume
from medzsad.errors import DicomError
t0 = time.monotonic()
try:
    load_volume(sys.argv[1])
except DicomError as e:
    print(f"{time.monotonic() - t0:.2f}|{e}")
"""


def test_the_issues_damaged_jpeg2000_is_refused_in_seconds(tmp_path: Path) -> None:
    """The issue's reproduction: GDCMJ2K_TextGBR.dcm with 0xB5 0x33 inserted at offset 1555."""
    data = real("GDCMJ2K_TextGBR.dcm").read_bytes()
    damaged = tmp_path / "GDCMJ2K_TextGBR_damaged.dcm"
    damaged.write_bytes(data[:1555] + b"\xb5\x33" + data[1555:])
    t0 = time.monotonic()
    proc = subprocess.run(  # in a child: the unchecked decoder hangs for minutes
        [sys.executable, "-c", _REPRO, str(damaged)], capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - t0 < 30
    seconds, message = proc.stdout.strip().split("|", 1)
    assert float(seconds) < 5
    assert message.startswith(f"{damaged}: PixelData (7FE0,0010) frame 1 is damaged JPEG 2000")
    # the undamaged file still decodes, and every JPEG 2000 test file of pydicom passes the check
    assert load_volume(str(real("GDCMJ2K_TextGBR.dcm"))).shape_ijk == (400, 400, 1)
    for name in (
        "MR_small_jp2klossless.dcm",
        "693_J2KI.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "US1_J2KR.dcm",
    ):
        assert load_volume(str(real(name))).data.size


# --- item 16: positions that give a non-finite or singular grid --------------------------------


def _ct_series(tmp_path: Path, name: str, edit: dict[int, dict[str, object]]) -> Path:
    uid = new_study_uid()
    for n, f in enumerate(ct5n()):
        restamp(f, tmp_path / name / f.name, uid, **edit.get(n, edit.get(-1, {})))
    return tmp_path / name


@pytest.mark.parametrize(
    ("edit", "tag"),
    [
        (
            {0: {"ImagePositionPatient": [0, 0, -1e308]}, 4: {"ImagePositionPatient": [0, 0, 1e308]}},
            "ImagePositionPatient",
        ),
        ({-1: {"PixelSpacing": [1e-300, 1e-300]}}, "PixelSpacing"),
        ({-1: {"PixelSpacing": [1e300, 1e300]}}, "PixelSpacing"),
    ],
)
def test_a_non_finite_or_singular_grid_is_refused_naming_the_tag(
    tmp_path: Path, edit: dict[int, dict[str, object]], tag: str
) -> None:
    folder = _ct_series(tmp_path, "bad", edit)
    with pytest.raises(DicomError, match=rf"{tag} \(00(20,0032|28,0030)\)") as info:
        load_volume(discover(folder).studies[0].series[0])
    assert "spacing" in str(info.value) or "not finite" in str(info.value)


def test_a_single_slice_with_a_vanishing_thickness_is_refused(tmp_path: Path) -> None:
    one = restamp(real("CT_small.dcm"), tmp_path / "one.dcm", new_study_uid(), SpacingBetweenSlices="1e-300")
    with pytest.raises(DicomError, match=r"k spacing .* SpacingBetweenSlices \(0018,0088\)"):
        load_volume(str(one))
