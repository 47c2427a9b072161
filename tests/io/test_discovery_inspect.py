"""Discovery of folders, zips and mixed files; the inspect report and CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_factory import SeriesSpec, write_2d, write_localizer, write_secondary_capture, write_series
from PIL import Image

from medzsad.errors import InputError
from medzsad.io.discovery import discover
from medzsad.io.inspect import inspect_path
from medzsad.io.readers import load_volume
from medzsad.io.series_selection import SeriesRules, select_series


@pytest.fixture()
def export(tmp_path: Path) -> tuple[Path, SeriesSpec, SeriesSpec]:
    root = tmp_path / "export"
    a = SeriesSpec(n_slices=6, description="AX 1.0", slice_step=1.0)
    b = SeriesSpec(n_slices=3, modality="MR", description="T2 SAG", iop=(0, 1, 0, 0, 0, -1), seed=4)
    write_series(root / "DICOM" / "S1", a)
    write_localizer(root / "DICOM" / "S1", a)
    write_series(root / "DICOM" / "deep" / "S2", b)
    write_secondary_capture(root / "DICOM" / "S1" / "dose_report", a.study_uid)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), root / "atlas.nii.gz")
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(root / "photo.png")
    (root / "README.txt").write_text("export notes")
    (root / "junk.bin").write_bytes(b"\x00\x01garbage" * 10)
    return root, a, b


def test_discover_folder(export) -> None:
    root, a, b = export
    found = discover(root)
    kinds = sorted(s.kind for s in found)
    assert kinds == ["dicom", "dicom", "image2d", "nifti"]
    by_uid = {s.study_uid: s for s in found}
    study_a = by_uid[a.study_uid]
    assert study_a.study_id == a.study_uid
    assert len(study_a.series) == 3  # axial, localizer, secondary capture
    assert {s.n_slices for s in study_a.series} == {6, 1}
    assert by_uid[b.study_uid].series[0].plane == "sagittal"
    reasons = {Path(s.path).name: s.reason for s in found.skipped}
    assert reasons["README.txt"].startswith("not a scan file")
    assert "not a DICOM file" in reasons["junk.bin"]
    assert found.n_files == 6 + 1 + 3 + 1 + 2 + 2
    nifti = next(s for s in found if s.kind == "nifti")
    assert nifti.study_id == "atlas" and nifti.files == (str(root / "atlas.nii.gz"),)
    assert set(study_a.files) == {str(p) for p in (root / "DICOM" / "S1").iterdir()}


def test_discover_zip_and_load(export, tmp_path: Path) -> None:
    root, a, _ = export
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in (root / "DICOM").rglob("*"):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    found = discover(z)
    study = next(s for s in found if s.study_uid == a.study_uid)
    assert study.path == str(z) and study.files == (str(z),)
    from_zip = load_volume(select_series(study).require())
    from_disk = load_volume(select_series(discover(root / "DICOM" / "S1").studies[0]).require())
    assert np.array_equal(from_zip.data, from_disk.data)
    np.testing.assert_allclose(from_zip.affine_ras, from_disk.affine_ras)


def test_discover_parallel_equals_serial(tmp_path: Path) -> None:
    for n in range(3):
        write_series(tmp_path / f"s{n}", SeriesSpec(n_slices=4, seed=n))
    serial = discover(tmp_path)
    import medzsad.io.discovery as d

    d._PARALLEL_MIN_FILES, old = 1, d._PARALLEL_MIN_FILES
    try:
        parallel = discover(tmp_path, workers=2)
    finally:
        d._PARALLEL_MIN_FILES = old
    assert [s.series for s in serial] == [s.series for s in parallel]


def test_discover_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        discover(tmp_path / "nope")


def test_selection_rules(export) -> None:
    root, a, b = export
    study = next(s for s in discover(root) if s.study_uid == a.study_uid)
    sel = select_series(study, SeriesRules(modality=("MR",)))
    assert sel.chosen is None
    with pytest.raises(InputError, match="no series can be scored"):
        sel.require("study x")
    sel = select_series(study, SeriesRules(min_slices=7))
    assert sel.chosen is None and any("min_slices 7" in r.reason for r in sel.rejected)
    sel = select_series(study, SeriesRules(image_type_exclude=(), exclude=(), include=("topogram",)))
    assert sel.chosen is not None and sel.chosen.n_slices == 1
    sel = select_series(study, SeriesRules(orientation=("coronal",), image_type_exclude=(), exclude=()))
    assert sel.chosen is not None and sel.chosen.plane == "coronal"
    sc = [
        r
        for r in select_series(study).rejected
        if "not an image" in r.reason or "Dose" in r.series.description
    ]
    assert sc, "the secondary capture must be rejected with a reason"


def test_rules_updated_from_overrides() -> None:
    rules = SeriesRules(modality=("CT",), min_slices=5)
    out = rules.updated({"modality": None, "min_slices": 10, "prefer": "most_slices"})
    assert out.modality == ("CT",) and out.min_slices == 10 and out.prefer == "most_slices"


def test_2d_dicom_and_png(tmp_path: Path) -> None:
    dcm = write_2d(tmp_path / "cr.dcm")
    v = load_volume(str(dcm))
    assert v.shape_ijk == (14, 20, 1)
    np.testing.assert_allclose(v.spacing_mm[:2], (0.2, 0.15))
    img = np.arange(35, dtype=np.uint8).reshape(5, 7)
    Image.fromarray(img).save(tmp_path / "x.png")
    v = load_volume(str(tmp_path / "x.png"))
    assert v.shape_ijk == (7, 5, 1) and np.array_equal(v.data[:, :, 0], img.T.astype(np.float32))


def test_inspect_report(export) -> None:
    root, a, _ = export
    rep = inspect_path(root)
    d = rep.to_dict()
    json.dumps(d)
    study = next(s for s in d["studies"] if s["study_uid"] == a.study_uid)
    assert study["chosen_series"] == a.series_uid
    assert study["volume"]["shape_ijk"] == [12, 16, 6]
    assert study["volume"]["orientation"] == "LPS"
    assert study["volume"]["value_range"][0] >= -1024
    assert len(study["rejected"]) == 2
    assert any(s["path"].endswith("README.txt") for s in d["skipped"])
    assert a.series_uid in rep.to_text()


def test_inspect_cli_json(export, capsys) -> None:
    from medzsad.cli import main

    root, a, _ = export
    code = main(["inspect", str(root), "--json"])
    assert code == 3  # the 3-slice MR study has fewer slices than mr-brain's min_slices: run fails it
    out = json.loads(capsys.readouterr().out)
    assert {s["kind"] for s in out["studies"]} == {"dicom", "nifti", "image2d"}
    mr = next(s for s in out["studies"] if s["series"][0]["modality"] == "MR")
    assert mr["chosen_series"] is None and "min_slices 5" in mr["rejected"][0]["reason"]
    assert main(["inspect", str(root / "nope")]) == 4
