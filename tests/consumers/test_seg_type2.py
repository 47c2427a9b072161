"""A source series stripped of Type 2 attributes (as anonymisers do) still gets valid DICOM objects.

highdicom reads ``src.StudyTime`` and friends directly; without the fill in
:func:`medzsad.report.seg_writer.with_type2_filled` the writers raised AttributeError.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pydicom
import pytest

from medzsad.report.seg_writer import write_dicom_seg, write_heatmap_parametric_map

#: Type 2 attributes of the Patient, General Study and Frame of Reference modules.
TYPE2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "PositionReferenceIndicator",
)  # fmt: skip


def _dciodvfy_errors(tool: str, path: Path) -> list[str]:
    proc = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]


def _strip(series, keywords: tuple[str, ...]) -> None:
    for f in series.files:
        ds = pydicom.dcmread(f)
        for kw in keywords:
            if kw in ds:
                delattr(ds, kw)
        ds.save_as(f)


@pytest.mark.parametrize("keywords", [("StudyTime",), TYPE2], ids=["StudyTime", "all"])
def test_source_without_type2_attributes_gets_a_valid_seg_and_pmap(
    tmp_path: Path, series_lib: ModuleType, require_tool: Callable[[str], str], keywords: tuple[str, ...]
) -> None:
    series = series_lib.write_ct_series(tmp_path / "src", seed=3)
    _strip(series, keywords)
    volume = series_lib.volume_from_series(series)
    heat, mask = series_lib.blob_mask(volume.shape_ijk)
    before = [f.read_bytes() for f in series.files]
    seg = write_dicom_seg(mask, volume, tmp_path / "seg.dcm", threshold=0.5)
    pmap = write_heatmap_parametric_map(heat, volume, tmp_path / "pmap.dcm", threshold=0.5)
    tool = require_tool("dciodvfy")
    for res in (seg, pmap):
        assert _dciodvfy_errors(tool, res.path) == []
        ds = pydicom.dcmread(res.path)
        for kw in keywords:
            assert kw in ds and ds[kw].is_empty, kw  # present, empty (Type 2)
    assert [f.read_bytes() for f in series.files] == before  # the source files are untouched
