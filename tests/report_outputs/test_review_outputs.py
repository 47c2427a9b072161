"""The runner's entry point: formats dispatch, DICOM-only objects, and the ``medzsad slicer`` command."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import pydicom
import pytest

from medzsad.cli import main
from medzsad.io.volume import SourceInfo
from medzsad.report.review_outputs import PMAP_FILE, SEG_FILE, write_review_outputs


def test_dicom_study_gets_every_requested_review_output(tmp_path: Path, ct_volume, heat_mask) -> None:
    heat, mask = heat_mask
    formats = ["nifti", "dicom-seg", "dicom-pmap", "slicer", "png", "html"]
    out = write_review_outputs(tmp_path / "s1", ct_volume, heat, mask, formats, threshold=0.5)
    assert out.skipped == ()
    assert out.seg is not None and out.seg.path == tmp_path / "s1" / SEG_FILE
    assert out.parametric_map is not None and out.parametric_map.path == tmp_path / "s1" / PMAP_FILE
    assert pydicom.dcmread(out.seg.path).Modality == "SEG"
    assert out.slicer is not None and out.slicer_script == out.slicer.folder / "load_in_slicer.py"
    assert all(p.is_file() for p in out.files())


def test_non_dicom_study_skips_dicom_objects(tmp_path: Path, ct_volume, heat_mask) -> None:
    heat, mask = heat_mask
    src = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(ct_volume.data, ct_volume.affine_ras), src)
    vol = dataclasses.replace(ct_volume, source=SourceInfo(paths=(str(src),), kind="nifti"))
    out = write_review_outputs(tmp_path / "s2", vol, heat, mask, ["dicom-seg", "slicer"], threshold=0.5)
    assert out.seg is None
    assert out.skipped == ("dicom-seg: not applicable: the source is a NIfTI file, not DICOM",)
    assert out.slicer is not None and not (tmp_path / "s2" / "dicom").exists()
    only_nifti = write_review_outputs(tmp_path / "s3", vol, heat, mask, ["nifti"], threshold=0.5)
    assert only_nifti.files() == [] and not any((tmp_path / "s3").iterdir())


def test_slicer_command_prints_and_writes_the_script(
    tmp_path: Path, ct_volume, heat_mask, capsys: pytest.CaptureFixture[str]
) -> None:
    heat, mask = heat_mask
    write_review_outputs(tmp_path / "s1", ct_volume, heat, mask, ["slicer"], threshold=0.5)
    assert main(["slicer", str(tmp_path / "s1")]) == 0
    printed = capsys.readouterr().out
    assert "vtkMRMLSegmentationStorageNode" in printed and "anomaly.seg.nrrd" in printed
    target = tmp_path / "load.py"
    assert main(["slicer", str(tmp_path / "s1"), "-o", str(target)]) == 0
    assert target.read_text() == printed
    assert main(["slicer", str(tmp_path / "missing")]) == 6  # OutputError -> exit code 6
