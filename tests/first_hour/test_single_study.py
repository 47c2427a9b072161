"""``medzsad run -i PATH -o DIR``: one study without a cohort file, same code path and outputs."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import pytest

from medzsad.cli import EXIT_CONFIG, EXIT_INPUT, main
from medzsad.config.model import SMOKE_MODEL
from medzsad.config.single_study import FAST_IMAGE_SIZE, single_study_cohort

SMOKE = ["--smoke", "--fast", "--device", "cpu", "-q"]


def _study(out: Path) -> Path:
    studies = sorted(p for p in (out / "studies").iterdir() if p.is_dir())
    assert len(studies) == 1, studies
    return studies[0]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_nifti_file(scan: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", "-i", str(scan), "-o", str(out), "--formats", "nifti,png,html", *SMOKE]) == 0
    study = _study(out)
    heat = nib.load(study / "heatmap.nii.gz")
    assert heat.shape == nib.load(scan).shape
    assert (study / "overlay.png").is_file() and (out / "report.html").is_file()
    rows = _rows(out / "studies.csv")
    assert [r["status"] for r in rows] == ["done"]
    assert rows[0]["smoke_run"] == "True"  # a smoke run is labelled in the cohort table


def test_dicom_folder(dicom_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", "-i", str(dicom_folder), "-o", str(out), "--preset", "ct-head", *SMOKE]) == 0
    study = _study(out)
    assert nib.load(study / "heatmap.nii.gz").shape == (24, 20, 8)
    lesions = _rows(study / "lesions.csv")
    assert lesions, "the smoke model's heat always has a top lesion at the fixed 0.5 threshold"
    assert {r["intensity_unit"] for r in lesions} == {"HU"}
    assert all(-1100 <= float(r["intensity_mean"]) <= 200 for r in lesions)


def test_zip_archive(dicom_folder: Path, tmp_path: Path) -> None:
    archive = Path(shutil.make_archive(str(tmp_path / "export"), "zip", dicom_folder))
    out = tmp_path / "out"
    assert main(["run", "-i", str(archive), "-o", str(out), *SMOKE]) == 0
    assert nib.load(_study(out) / "heatmap.nii.gz").shape == (24, 20, 8)


def test_dicomdir(dicom_folder: Path, tmp_path: Path) -> None:
    import pydicom
    from pydicom.fileset import FileSet

    media = tmp_path / "cdrom"
    fs = FileSet()
    for f in sorted(dicom_folder.glob("*.dcm")):
        fs.add(pydicom.dcmread(f))
    fs.write(media)
    out = tmp_path / "out"
    assert main(["run", "-i", str(media / "DICOMDIR"), "-o", str(out), *SMOKE]) == 0
    assert nib.load(_study(out) / "heatmap.nii.gz").shape == (24, 20, 8)
    assert single_study_cohort(media / "DICOMDIR", out_dir=out).name == "cdrom"


def test_cohort_of_one_is_the_same_config_a_file_would_give(scan: Path, tmp_path: Path) -> None:
    config = single_study_cohort(scan, out_dir=tmp_path / "o", smoke=True, fast=True, formats=["nifti"])
    assert config.inputs.paths == (str(scan.resolve()),)
    assert config.out_dir == (tmp_path / "o").resolve()
    assert config.model.tiny and config.model.is_smoke
    assert config.model.image_size == FAST_IMAGE_SIZE["smoke"] != SMOKE_MODEL["image_size"]
    assert config.pipeline.skip_empty_slices is True
    assert config.name == "head"
    full = single_study_cohort(scan, out_dir=tmp_path / "o", fast=True)
    assert full.model.image_size == FAST_IMAGE_SIZE["model"] and not full.model.is_smoke


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["run", "-i", "{scan}"], EXIT_CONFIG, "-o DIR"),
        (["run", "-i", "{tmp}/missing.nii.gz", "-o", "{tmp}/o"], EXIT_INPUT, "no such file"),
        (["run", "{tmp}/c.yaml", "-i", "{scan}", "-o", "{tmp}/o"], EXIT_CONFIG, "not both"),
        (["run", "-i", "{scan}", "-o", "{tmp}/o", "--formats", "nifti,jpeg"], EXIT_CONFIG, "jpeg"),
        (["run", "{tmp}/c.yaml", "--fast"], EXIT_CONFIG, "only with -i"),
        (["run"], EXIT_CONFIG, "-i PATH -o DIR"),
        (
            ["run", "-i", "{scan}", "-o", "{tmp}/o", "--preset", "ct-haed"],
            EXIT_CONFIG,
            "did you mean 'ct-head'",
        ),
    ],
)
def test_single_study_usage_errors(
    argv: list[str], code: int, words: str, scan: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "c.yaml").write_text(f"name: c\ninputs: {{paths: [{scan}]}}\n")
    args = [a.format(scan=scan, tmp=tmp_path) for a in argv]
    assert main(args) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert words in err


def test_profile_goes_to_the_calibrated_threshold_or_is_refused(scan: Path, tmp_path: Path, capsys) -> None:
    from medzsad.config import ThresholdRule

    if "profile" in ThresholdRule.model_fields:  # the calibration feature is present
        config = single_study_cohort(scan, out_dir=tmp_path / "o", profile=tmp_path)
        assert getattr(config.output.threshold, "profile", None) == str(tmp_path.resolve())
        return
    argv = ["run", "-i", str(scan), "-o", str(tmp_path / "o"), "--profile", str(tmp_path)]
    assert main(argv) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--profile" in err and "not supported" in err


def test_a_named_preset_applies_to_a_volume_file_but_not_to_another_modality(
    scan: Path, dicom_folder: Path, tmp_path: Path
) -> None:
    """A NIfTI names no modality: --preset mr-brain says what it is (it was refused as 'unknown')."""
    out = tmp_path / "nifti"
    assert main(["run", "-i", str(scan), "-o", str(out), "--preset", "mr-brain", *SMOKE]) == 0
    assert [r["status"] for r in _rows(out / "studies.csv")] == ["done"]
    ct = tmp_path / "ct"
    assert main(["run", "-i", str(dicom_folder), "-o", str(ct), "--preset", "mr-brain", *SMOKE]) == 3
    (row,) = _rows(ct / "studies.csv")
    assert row["status"] == "failed" and "modality CT not in ['MR']" in row["error"]
