"""Slicer bundle files read by independent readers (SimpleITK, nibabel), manifest and script."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medzsad.errors import OutputError
from medzsad.io.volume import SourceInfo
from medzsad.report.nifti_writer import HEAT_SCALE
from medzsad.report.slicer_bundle import (
    focus_point,
    read_bundle,
    write_heat_color_table,
    write_label_color_table,
    write_seg_nrrd,
    write_slicer_bundle,
)
from medzsad.report.slicer_bundle_script import SCRIPT_NAME, slicer_script, write_slicer_script


def test_seg_nrrd_matches_mask_and_geometry(tmp_path: Path, ct_volume, heat_mask) -> None:
    _, mask = heat_mask
    path = write_seg_nrrd(mask, ct_volume.affine_ras, tmp_path / "a.seg.nrrd", segment_name="anomaly")
    img = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img).transpose(2, 1, 0), mask)
    np.testing.assert_allclose(img.GetOrigin(), ct_volume.origin_lps_mm, atol=1e-6)
    np.testing.assert_allclose(img.GetSpacing(), ct_volume.spacing_mm, atol=1e-6)
    np.testing.assert_allclose(np.reshape(img.GetDirection(), (3, 3)), ct_volume.direction_lps, atol=1e-7)
    assert img.GetMetaData("Segment0_Name") == "anomaly"
    assert img.GetMetaData("Segment0_LabelValue") == "1"
    assert img.GetMetaData("Segment0_Layer") == "0"
    lo, hi = np.argwhere(mask).min(axis=0), np.argwhere(mask).max(axis=0)
    extent = [int(v) for v in img.GetMetaData("Segment0_Extent").split()]
    assert extent == [lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]]


def test_color_tables(tmp_path: Path) -> None:
    heat = write_heat_color_table(tmp_path / "h.ctbl").read_text().splitlines()
    rows = [line.split() for line in heat if not line.startswith("#")]
    assert [int(r[0]) for r in rows] == list(range(256))
    assert all(len(r) == 6 and all(0 <= int(v) <= 255 for v in r[2:]) for r in rows)
    assert sum(map(int, rows[-1][2:5])) > sum(map(int, rows[0][2:5]))  # dark -> bright
    labels = write_label_color_table(tmp_path / "l.ctbl", n_labels=3).read_text().splitlines()
    assert len(labels) == 2 + 4 and labels[2] == "0 background 0 0 0 0"
    assert labels[3].startswith("1 lesion_1 ") and labels[3].endswith(" 255")


def test_focus_point_is_the_peak_of_the_top_lesion(ct_volume, heat_mask) -> None:
    heat, mask = heat_mask
    ras, score = focus_point(heat, mask, ct_volume.affine_ras)
    np.testing.assert_allclose(ras, (ct_volume.affine_ras @ [4, 3, 1, 1])[:3], atol=1e-9)
    assert score == pytest.approx(heat[4, 3, 1])
    assert focus_point(heat, np.zeros_like(mask), ct_volume.affine_ras) is None


def test_dicom_bundle_writes_scan_and_manifest(tmp_path: Path, ct_volume, heat_mask) -> None:
    heat, mask = heat_mask
    bundle = write_slicer_bundle(tmp_path / "study", ct_volume, heat, mask, threshold=0.5)
    assert read_bundle(tmp_path / "study") == bundle
    scan = nib.load(bundle.scan)
    assert scan.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(scan.dataobj), ct_volume.data)
    np.testing.assert_allclose(scan.affine, ct_volume.affine_ras, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(nib.load(bundle.mask_labelmap).dataobj), mask)
    # heat maps are stored as uint16 steps of 1/65535 (nifti_writer): within half a step
    np.testing.assert_allclose(
        np.asarray(nib.load(bundle.heatmap).dataobj), heat, rtol=0, atol=0.5 / HEAT_SCALE + 1e-9
    )
    doc = json.loads((bundle.folder / "bundle.json").read_text())
    assert not any(Path(p).is_absolute() for p in doc["files"].values())  # the folder can move
    assert bundle.window == (0.5, 1.0)


def test_nifti_bundle_references_source_and_existing_niftis(tmp_path: Path, ct_volume, heat_mask) -> None:
    heat, mask = heat_mask
    src = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(ct_volume.data, ct_volume.affine_ras), src)
    heat_file = tmp_path / "study" / "heatmap.nii.gz"
    heat_file.parent.mkdir()
    nib.save(nib.Nifti1Image(heat, ct_volume.affine_ras), heat_file)
    vol = dataclasses.replace(ct_volume, source=SourceInfo(paths=(str(src),), kind="nifti"))
    bundle = write_slicer_bundle(tmp_path / "study", vol, heat, mask, threshold=0.3, heatmap_nifti=heat_file)
    assert bundle.scan == src.resolve()
    assert bundle.heatmap == heat_file.resolve()
    assert not (bundle.folder / "scan.nii.gz").exists()
    assert not (bundle.folder / "heatmap.nii.gz").exists()
    files = json.loads((bundle.folder / "bundle.json").read_text())["files"]
    assert files["scan"] == str(src.resolve()) and files["heatmap"] == "../heatmap.nii.gz"
    moved = tmp_path / "moved"
    (tmp_path / "study").rename(moved)  # a moved study folder still opens
    assert read_bundle(moved).heatmap == (moved / "heatmap.nii.gz").resolve()


def test_script_and_missing_bundle(tmp_path: Path, ct_volume, heat_mask) -> None:
    heat, mask = heat_mask
    bundle = write_slicer_bundle(tmp_path / "study", ct_volume, heat, mask, threshold=0.5)
    text = slicer_script(tmp_path / "study")
    compile(text, SCRIPT_NAME, "exec")
    # files of the study folder relative to the script (the folder can move)
    assert '"segmentation": "anomaly.seg.nrrd"' in text and '"scan": "scan.nii.gz"' in text
    assert str(bundle.folder) not in text.split("except NameError")[0]
    assert repr([round(v, 4) for v in bundle.focus_ras]) in text
    out = write_slicer_script(tmp_path / "study")
    assert out == bundle.folder / SCRIPT_NAME and out.read_text() == text
    with pytest.raises(OutputError, match="bundle"):
        slicer_script(tmp_path / "nowhere")
    bundle.segmentation.unlink()
    with pytest.raises(OutputError, match="missing"):
        read_bundle(tmp_path / "study")


def test_a_run_folder_lists_its_studies(tmp_path: Path, ct_volume, heat_mask, capsys) -> None:
    """medzsad slicer RUN_DIR names the commands for the run's studies instead of a wrong fix."""
    from medzsad.cli import EXIT_OUTPUT, main

    heat, mask = heat_mask
    for sid in ("ct-a", "ct-b"):
        write_slicer_bundle(tmp_path / "run" / "studies" / sid, ct_volume, heat, mask, threshold=0.5)
    (tmp_path / "run" / "studies" / "no-bundle").mkdir()
    assert main(["slicer", str(tmp_path / "run")]) == EXIT_OUTPUT
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"medzsad: error: {tmp_path / 'run'} is a run folder; give one of its 2 studies:"
    assert [line.strip() for line in err[1:]] == [
        f"medzsad slicer {tmp_path / 'run' / 'studies' / s}" for s in ("ct-a", "ct-b")
    ]
