"""A DICOM cohort run with every review output, opened by the consumers.

``medzsad run`` (tiny random model) on a shuffled, oblique CT series with outputs
heatmap/mask (NIfTI), overlay (PNG), dicom-seg, dicom-pmap, slicer and html; then dciodvfy,
dcentvfy, highdicom, Slicer's storage nodes and the review page check what it wrote.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import highdicom as hd
import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import slicer
from tiny_model import TINY_MODEL

from medzsad.cli import main
from medzsad.report.slicer_bundle import read_bundle

# the acceptance wording of the issue, verbatim
FORMATS = "[nifti, dicom-seg, slicer, png, html]"
COHORT = """name: review-e2e
inputs:
  paths: [{src}]
pipeline:
  skip_empty_slices: false
{model}output:
  dir: {out}
  formats: {formats}
  threshold: {{method: percentile, value: 95.0, min_lesion_ml: 0.0}}
"""


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v for k, v in attrs if k in ("href", "src") and v and not v.startswith("#")]


def _errors(tool: str, files: list[Path]) -> list[str]:
    proc = subprocess.run([tool, *map(str, files)], capture_output=True, text=True, timeout=120)
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]


def _seg_mask_in_nifti_grid(seg_path: Path, nifti: nib.Nifti1Image) -> np.ndarray:
    """SEG voxels placed by highdicom's geometry into the NIfTI mask's grid (through RAS)."""
    hv = hd.seg.segread(seg_path).get_volume()
    idx = np.argwhere(hv.array[..., 0] > 0)
    lps = np.c_[idx, np.ones(len(idx))] @ hv.affine.T
    ras = lps * np.array([-1.0, -1.0, 1.0, 1.0])
    ijk = ras @ np.linalg.inv(nifti.affine).T
    rounded = np.rint(ijk[:, :3]).astype(int)
    assert np.abs(ijk[:, :3] - rounded).max() < 1e-3
    out = np.zeros(nifti.shape, np.uint8)
    out[tuple(rounded.T)] = 1
    return out


def test_dicom_cohort_run_writes_every_review_output(
    tmp_path: Path, series_lib, require_tool: Callable[[str], str]
) -> None:
    series = series_lib.write_ct_series(tmp_path / "ct", seed=11)
    out = tmp_path / "out"
    cfg = tmp_path / "cohort.yaml"
    cfg.write_text(COHORT.format(src=series.folder, out=out, formats=FORMATS, model=TINY_MODEL))
    assert main(["run", str(cfg), "--quiet"]) == 0
    studies = pd.read_csv(out / "studies.csv", keep_default_na=False)
    assert list(studies["status"]) == ["done"]
    study = out / "studies" / studies.loc[0, "safe_id"]
    for name in (
        "heatmap.nii.gz",
        "mask.nii.gz",
        "overlay.png",
        "dicom/anomaly_seg.dcm",
        "slices.csv",
        "lesions.csv",
        "provenance.json",
        "slicer/anomaly.seg.nrrd",
    ):
        assert (study / name).is_file(), name

    assert not (study / "dicom" / "heatmap_pmap.dcm").exists()  # not asked for
    seg_path = study / "dicom" / "anomaly_seg.dcm"
    assert _errors(require_tool("dciodvfy"), [seg_path]) == []
    assert _errors(require_tool("dcentvfy"), [*series.files, seg_path]) == []
    seg = pydicom.dcmread(seg_path)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    assert seg.FrameOfReferenceUID == series.for_uid
    mask = nib.load(study / "mask.nii.gz")
    expected = (np.asarray(mask.dataobj) > 0).astype(np.uint8)
    assert expected.any()
    np.testing.assert_array_equal(_seg_mask_in_nifti_grid(seg_path, mask), expected)

    bundle = read_bundle(study)
    assert bundle.heatmap == (study / "heatmap.nii.gz").resolve()
    script = (bundle.folder / "load_in_slicer.py").read_text()
    assert ".partial-" not in script and '"segmentation": "anomaly.seg.nrrd"' in script
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(bundle.segmentation))
    assert storage.ReadData(node) == 1
    assert node.GetSegmentation().GetNthSegment(0).GetName() == "anomaly"

    parser = _Refs()
    parser.feed((out / "report.html").read_text())
    assert any(r.endswith("overlay.png") for r in parser.refs)
    assert any(r.endswith("dicom/anomaly_seg.dcm") for r in parser.refs)
    for ref in parser.refs:
        assert not re.match(r"^[a-z]+:|^/", ref) and (out / unquote(ref)).is_file(), ref
