"""A scan in an input folder that cannot be read fails as a study; other files stay skipped.

A walk-through put a corrupt ``DOE_JANE_MRN998877.nii.gz`` in an ``inputs.paths`` folder: the run
exited 0 with no row, no errors.csv line and no word on the terminal (only ``inspect`` named it),
while the same file given with ``run -i`` failed with its reason.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from medzsad.cli import EXIT_FAILED_STUDIES, main

from .conftest import blob_volume, write_cohort_yaml


def test_unreadable_scans_in_a_folder_fail_as_studies(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    vol, _ = blob_volume((24, 20, 6), 3, lesion=False)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), data / "ok.nii.gz")
    (data / "DOE_JANE.nii.gz").write_bytes(b"\x1f\x8b\x08\x00broken")  # its header cannot be read
    (data / "junk.dcm").write_bytes(b"garbage")
    (data / "README.txt").write_text("export notes")  # not scans: skipped, as before
    (data / "VERSION").write_text("1.0")
    cfg = write_cohort_yaml(tmp_path / "c.yaml", tmp_path / "unused.csv", tmp_path / "out")
    cfg.write_text(cfg.read_text().replace(f"manifest: {tmp_path / 'unused.csv'}", f"paths: [{data}]"))
    assert main(["run", str(cfg), "-q"]) == EXIT_FAILED_STUDIES
    table = pd.read_csv(tmp_path / "out" / "studies.csv", keep_default_na=False).set_index("study_id")
    assert dict(table["status"]) == {"ok": "done", "DOE_JANE": "failed", "junk.dcm": "failed"}
    assert "cannot read the NIfTI file header" in table.loc["DOE_JANE", "error"]
    errors = pd.read_csv(tmp_path / "out" / "errors.csv", keep_default_na=False).set_index("study_id")
    assert dict(errors["error_type"]) == {"DOE_JANE": "NiftiError", "junk.dcm": "DicomError"}
