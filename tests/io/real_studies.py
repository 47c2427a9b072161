"""Studies made from real files (pydicom's and pydicom-data's test files), as PACS exports mix them.

A PACS export puts every object of a study under one StudyInstanceUID: the CT series, its scout,
a SEG, a secondary capture, an SR. :func:`restamp` copies a real file with another
StudyInstanceUID (and optionally other attributes), which is how these tests build such studies
from files that come from different studies.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

__all__ = ["TEST_FILES", "real", "restamp", "copy_real", "ct5n", "mr700"]

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
DICOMDIR_SETS = TEST_FILES / "dicomdirtests"


def real(name: str) -> Path:
    """A pydicom or pydicom-data test file by name (``liver.dcm``, ``rtdose.dcm``, ...)."""
    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(f"{name}: not among pydicom's or pydicom-data's test files")
    return Path(path)


def ct5n() -> list[Path]:
    """A real 5-slice axial CT series (pydicom's dicomdirtests/98892001/CT5N)."""
    return sorted((DICOMDIR_SETS / "98892001" / "CT5N").iterdir())


def mr700() -> list[Path]:
    """7 real MR slices of one series (pydicom's dicomdirtests/98892003/MR700)."""
    return sorted((DICOMDIR_SETS / "98892003" / "MR700").iterdir())


def restamp(src: Path, dst: Path, study_uid: str, **changes: object) -> Path:
    """Copy a real DICOM file into another study (and change other attributes), as an export would.

    Args:
        src: The real file.
        dst: Where to write the copy (folders are created).
        study_uid: The StudyInstanceUID of the copy.
        **changes: Other attributes by keyword, e.g. ``ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]``.
    """
    ds = pydicom.dcmread(src, force=True)  # pydicom's DICOMDIR sets are raw data sets (no preamble)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        implicit, little = ds.original_encoding
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)
    return dst


def copy_real(files: list[Path], folder: Path) -> list[Path]:
    """Copy real files unchanged into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, folder / f.name)) for f in files]


def new_study_uid() -> str:
    """A fresh StudyInstanceUID."""
    return str(generate_uid())
