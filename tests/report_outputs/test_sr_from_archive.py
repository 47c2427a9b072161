"""A DICOM SR for a study read from a .zip export: its evidence is re-read from the archive members."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from medzsad.cli import main
from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series


def test_a_study_in_a_zip_gets_its_sr(tmp_path: Path) -> None:
    data = np.zeros((32, 28, 6), dtype=np.float32)
    data[6:26, 5:23, :] = 900.0
    data[14:19, 10:15, 2:4] = 1600.0
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    files = write_dicom_series(data, affine, tmp_path / "s", SeriesSpec("MR", "z", "z"))
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in files:
            z.write(f, f"STUDY/{f.name}")
    out = tmp_path / "out"
    assert main(["run", "-i", str(archive), "-o", str(out), "--smoke", "--formats", "dicom-sr", "-q"]) == 0
    assert pd.read_csv(out / "errors.csv").empty  # before: 'cannot re-read the source series'
    (sr_path,) = (out / "studies").rglob("anomaly_sr.dcm")
    sr = pydicom.dcmread(sr_path)
    cited = {
        str(i.ReferencedSOPInstanceUID)
        for s in sr.CurrentRequestedProcedureEvidenceSequence
        for series in s.ReferencedSeriesSequence
        for i in series.ReferencedSOPSequence
    }
    assert {str(pydicom.dcmread(f).SOPInstanceUID) for f in files} <= cited
