"""Issue 16 in a cohort run: hostile inputs fail their own study with a typed error; the others complete."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

import medzsad.errors
from medzsad.cli import EXIT_FAILED_STUDIES, main

from .conftest import blob_volume, write_cohort_yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
import hostile_inputs as h  # noqa: E402

TYPED = {name for name in dir(medzsad.errors) if name.endswith("Error")}


def _bad_inputs(root: Path) -> dict[str, Path]:
    def folder(name: str) -> Path:
        p = root / name
        p.mkdir(parents=True)
        return p

    nan_series = folder("nan_slope")
    for f in h.dicom_series(nan_series, 6):
        f.write_bytes(f.read_bytes().replace(b"(\x00S\x10DS\x02\x001 ", b"(\x00S\x10DS\x04\x00NaN "))
    return {
        "claim": h.nifti_claim(folder("claim")),
        "dt255": h.nifti_datatype(folder("dt")),
        "cifti": h.cifti(folder("cifti")),
        "devzero": h.mhd_external(folder("mhd")),
        "ndims": h.mha_ndims(folder("mha")),
        "frames": h.dicom_frames_claim(folder("frames")).parent,
        "rle": h.dicom_rle_truncated(folder("rle")).parent,
        "zip2g": h.zip_declared_size(folder("zip")),
        "nan": nan_series,
        "@png": h.png_claim(folder("png")),
    }


def test_hostile_studies_fail_typed_and_the_others_complete(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEDZSAD_MAX_SCAN_GIB", "1")  # the 2 GiB zip member is over it
    data, _ = blob_volume((28, 24, 6), 3, lesion=False)
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.2, 1.0, 2.5, 1.0])), good)
    bad = _bad_inputs(tmp_path / "bad")
    rows = ["study_id,path,label,mask", f"good,{good},0,"]
    rows += [f"{k},{v},1," for k, v in bad.items()]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    cfg = write_cohort_yaml(tmp_path / "c.yaml", manifest, tmp_path / "out")
    assert main(["run", str(cfg), "--quiet"]) == EXIT_FAILED_STUDIES
    studies = pd.read_csv(tmp_path / "out" / "studies.csv", keep_default_na=False).set_index("study_id")
    assert studies.loc["good", "status"] == "done"
    assert (studies.drop(index="good")["status"] == "failed").all(), studies["status"]
    errors = pd.read_csv(tmp_path / "out" / "errors.csv", keep_default_na=False).set_index("study_id")
    assert set(errors.index) == {k.replace("@", "'@") for k in bad}  # formula cells neutralised
    assert set(errors["error_type"]) <= TYPED, errors["error_type"].to_dict()
    assert errors.loc["claim", "error_type"] == "ResourceLimitError"
    assert errors.loc["devzero", "error_type"] == "UnsafePathError"
    assert "zip file_size claims 2 GiB" in errors.loc["zip2g", "message"]
    assert errors.loc["nan", "error_type"] == "DicomError" and "RescaleSlope" in errors.loc["nan", "message"]


def test_one_bad_file_in_an_input_folder_does_not_stop_the_run(tmp_path: Path) -> None:
    data, _ = blob_volume((28, 24, 6), 4, lesion=False)
    d = tmp_path / "folder"
    d.mkdir()
    nib.save(nib.Nifti1Image(data, np.eye(4)), d / "ok.nii.gz")
    h.cifti(d)
    h.nifti_datatype(d)
    (d / "loop").symlink_to("loop")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        write_cohort_yaml(tmp_path / "tmp.yaml", d / "x.csv", tmp_path / "out")
        .read_text()
        .replace(f"manifest: {d / 'x.csv'}", f"paths: [{d}]")
    )
    assert main(["run", str(cfg), "--quiet"]) == 0
    studies = pd.read_csv(tmp_path / "out" / "studies.csv", keep_default_na=False)
    assert list(studies["status"]) == ["done"]


def test_zip_source_gets_a_dicom_seg(tmp_path: Path) -> None:
    """The SEG writer reads its source headers through medzsad.io (``x.zip!/member``), not dcmread."""
    import zipfile

    import pydicom

    from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series
    from medzsad.report.review_outputs import SEG_FILE

    vol, _ = blob_volume((24, 20, 6), 5, lesion=True)
    series = tmp_path / "series"
    write_dicom_series(vol, np.diag([1.0, 1.0, 3.0, 1.0]), series, SeriesSpec("CT", "zipseg", "zipseg"))
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(series.iterdir()):
            zf.write(f, f"DICOM/{f.name}")
    cfg = write_cohort_yaml(tmp_path / "c.yaml", tmp_path / "unused.csv", tmp_path / "out")
    text = cfg.read_text().replace(f"manifest: {tmp_path / 'unused.csv'}", f"paths: [{archive}]")
    cfg.write_text(text + "  outputs: [heatmap, mask, dicom-seg]\n")
    assert main(["run", str(cfg), "--quiet"]) == 0
    (seg,) = (tmp_path / "out" / "studies").glob(f"*/{SEG_FILE}")
    ds = pydicom.dcmread(seg)
    assert ds.Modality == "SEG" and len(ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence) > 0
