"""A "PACS export zoo": one folder of real-file studies and mixtures, as a hospital export holds them.

Every study comes from pydicom's or pydicom-data's test files (or nibabel's), restamped into its
own StudyInstanceUID (mixtures: several real files restamped into one study), each in its own
sub-folder. :data:`EXPECTED` says which are scored and which are refused, and why.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from nibabel.testing import data_path
from real_studies import DICOMDIR_SETS, ct5n, mr700, new_study_uid, real, restamp

from medzsad.io.discovery import discover
from medzsad.io.readers import load_volume
from medzsad.report.seg_writer import write_dicom_seg, write_heatmap_parametric_map

__all__ = ["ZooStudy", "build_zoo"]


@dataclass(frozen=True)
class ZooStudy:
    """One study of the zoo.

    Attributes:
        name: Its sub-folder.
        study_uid: StudyInstanceUID ("" for a NIfTI file).
        scored: True when run scores it (then ``reference`` is what SimpleITK reads), else the
            refusal's words.
        reference: File(s) SimpleITK reads for the scored series' geometry.
    """

    name: str
    study_uid: str
    scored: bool
    why: str = ""
    reference: tuple[Path, ...] = ()


def _one(zoo: Path, name: str, source: Path, scored: bool, why: str = "", **changes: object) -> ZooStudy:
    uid = new_study_uid()
    out = restamp(source, zoo / name / source.name, uid, **changes)
    return ZooStudy(name, uid, scored, why, (out,) if scored else ())


def _series(zoo: Path, name: str, files: list[Path], scored: bool, why: str = "") -> ZooStudy:
    uid = new_study_uid()
    out = [restamp(f, zoo / name / f.name, uid) for f in files]
    return ZooStudy(name, uid, scored, why, tuple(out) if scored else ())


def _mixed_export(zoo: Path) -> ZooStudy:
    """A CT series, its scout, a liver SEG, a secondary capture and an SR in one study."""
    uid = new_study_uid()
    ct = [restamp(f, zoo / "mixed_export" / "ct" / f.name, uid) for f in ct5n()]
    restamp(
        real("CT_small.dcm"),
        zoo / "mixed_export" / "scout.dcm",
        uid,
        ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"],
        SeriesInstanceUID=new_study_uid(),
    )
    for name in ("liver.dcm", "OT-PAL-8-face.dcm", "test-SR.dcm"):
        restamp(real(name), zoo / "mixed_export" / name, uid)
    return ZooStudy("mixed_export", uid, True, "", tuple(ct))


def _repulled(zoo: Path) -> tuple[ZooStudy, ZooStudy]:
    """A study after a push and a re-pull (the scan, medzsad's SEG and map), and the outputs alone."""
    uid = new_study_uid()
    ct = [restamp(f, zoo / "repulled" / f.name, uid) for f in ct5n()]
    volume = load_volume(discover(zoo / "repulled").studies[0].series[0])
    mask = np.zeros(volume.shape_ijk, np.uint8)
    mask[5:10, 5:10, 1:4] = 1
    write_dicom_seg(mask, volume, zoo / "repulled" / "seg.dcm", threshold=0.5)
    write_heatmap_parametric_map(mask.astype(np.float32), volume, zoo / "repulled" / "pmap.dcm")
    alone_uid = new_study_uid()
    for name in ("seg.dcm", "pmap.dcm"):
        restamp(zoo / "repulled" / name, zoo / "outputs_only" / name, alone_uid)
    return (
        ZooStudy("repulled", uid, True, "", tuple(ct)),
        ZooStudy("outputs_only", alone_uid, False, "written by medzsad"),
    )


def _copies(zoo: Path) -> ZooStudy:
    """One enhanced MR exported four times (uncompressed, RLE, JPEG-LS, JPEG 2000): duplicates."""
    uid = new_study_uid()
    names = ("emri_small_jpeg_2k_lossless.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm")
    for n, name in enumerate(names):
        restamp(real(name), zoo / "four_copies" / f"{n}_{name}", uid)
    plain = restamp(real("emri_small.dcm"), zoo / "four_copies" / "z_emri_small.dcm", uid)
    return ZooStudy("four_copies", uid, True, "", (plain,))


def _damaged(zoo: Path) -> list[ZooStudy]:
    """The issue's damaged JPEG 2000 (two bytes inserted at 1555) and an enhanced MR cut short."""
    j2k_uid, mr_uid = new_study_uid(), new_study_uid()
    j2k = restamp(real("GDCMJ2K_TextGBR.dcm"), zoo / "damaged_j2k" / "text.dcm", j2k_uid)
    raw = j2k.read_bytes()
    j2k.write_bytes(raw[:1555] + b"\xb5\x33" + raw[1555:])
    mr = restamp(real("emri_small.dcm"), zoo / "truncated_mr" / "emri.dcm", mr_uid)
    mr.write_bytes(mr.read_bytes()[:-30000])
    return [
        ZooStudy("damaged_j2k", j2k_uid, False, "damaged JPEG 2000"),
        ZooStudy("truncated_mr", mr_uid, False, "truncated"),
    ]


def _dicomdir_studies(zoo: Path) -> list[ZooStudy]:
    """pydicom's CD-R media: a CR study of three 1-image series, a 4-slice CT, a 2+5-slice CT."""
    out = []
    cr = sorted((DICOMDIR_SETS / "77654033").glob("CR*/*"))
    uid = new_study_uid()
    files = [restamp(f, zoo / "cr_three_series" / f"{f.parent.name}_{f.name}", uid) for f in cr]
    first = min(files, key=lambda f: int(pydicom.dcmread(f, stop_before_pixels=True).SeriesNumber))
    out.append(ZooStudy("cr_three_series", uid, True, "", (first,)))
    out.append(_series(zoo, "ct_four_slices", sorted((DICOMDIR_SETS / "77654033" / "CT2").iterdir()), False,
                       "4 slice(s) < min_slices 5"))  # fmt: skip
    uid = new_study_uid()
    for f in sorted((DICOMDIR_SETS / "98892001").glob("CT*/*")):
        restamp(f, zoo / "ct_two_series" / f"{f.parent.name}_{f.name}", uid)
    five = tuple(sorted((zoo / "ct_two_series").glob("CT5N_*")))
    out.append(ZooStudy("ct_two_series", uid, True, "", five))
    return out


def build_zoo(zoo: Path) -> list[ZooStudy]:
    """Write the zoo under ``zoo``; returns its studies."""
    studies = [
        _mixed_export(zoo),
        *_repulled(zoo),
        _copies(zoo),
        *_damaged(zoo),
        *_dicomdir_studies(zoo),
        _one(zoo, "enhanced_mr", real("emri_small.dcm"), True),
        _one(zoo, "radiograph", real("RG1_UNCI.dcm"), True),
        _one(zoo, "ultrasound_rgb", real("US1_UNCR.dcm"), True),
        _one(zoo, "ultrasound_two_frames", real("OBXXXX1A_2frame.dcm"), True),
        _one(zoo, "nm_secondary_capture", real("JPEG2000.dcm"), True),
        _one(zoo, "palette_capture", real("OT-PAL-8-face.dcm"), True),
        _series(zoo, "mr_projections", mr700(), False, "different orientations"),
        _one(zoo, "ct_one_slice", real("CT_small.dcm"), False, "1 slice(s) < min_slices 5"),
        _one(zoo, "enhanced_ct_two_frames", real("eCT_Supplemental.dcm"), False, "2 slice(s) < min_slices 5"),
        _one(zoo, "mr_one_slice", real("MR_small.dcm"), False, "1 slice(s) < min_slices 5"),
        _one(zoo, "seg_only", real("liver.dcm"), False, "segmentation, not a scan"),
        _one(zoo, "rt_dose", real("rtdose.dcm"), False, "RT object"),
        _one(zoo, "rt_struct", real("rtstruct.dcm"), False, "RT object"),
        _one(zoo, "sr_only", real("test-SR.dcm"), False, "structured report"),
    ]
    lossy_pair = new_study_uid()
    for name in ("693_UNCI.dcm", "693_UNCR.dcm"):
        restamp(real(name), zoo / "lossy_and_original" / name, lossy_pair)
    studies.append(ZooStudy("lossy_and_original", lossy_pair, False, "2 slice(s) < min_slices 5"))
    shutil.copy(Path(data_path) / "anatomical.nii", zoo / "anatomical.nii")
    studies.append(ZooStudy("anatomical", "", True, "", (zoo / "anatomical.nii",)))
    return studies
