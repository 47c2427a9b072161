"""A pulled study is named by the pseudonym of its UID, also when its cache folder holds another scan."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import medzsad.pacs.pull as pull
from medzsad.cohort.inputs import _from_pacs
from medzsad.ids import pseudonym_study_id


def test_ids_of_a_pulled_folder_never_hold_the_study_uid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ct = Path(str(get_testdata_file("CT_small.dcm")))
    uid = str(pydicom.dcmread(ct, stop_before_pixels=True).StudyInstanceUID)
    dest = tmp_path / "run" / "pacs-cache" / "dimse"
    folder = dest / uid  # the cache folder is named by the UID
    folder.mkdir(parents=True)
    shutil.copy(ct, folder / "1.dcm")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), str(folder / "stray.nii.gz"))
    report = pull.PullReport("dimse://pacs", dest, (pull.PulledStudy(uid, folder, 1, 1),))
    monkeypatch.setattr(pull, "pull_studies", lambda *a, **k: report)

    studies = _from_pacs(SimpleNamespace(), SimpleNamespace(out_dir=tmp_path / "run"))  # type: ignore[arg-type]

    ids = [s.study_id for s in studies]
    assert len(ids) == 2 and all(uid not in i for i in ids), ids
    sid = pseudonym_study_id("dimse", uid)
    assert pseudonym_study_id(sid, uid) in ids  # the DICOM study, beside the stray scan


def test_run_on_a_pull_destination_never_names_a_study_by_its_uid(tmp_path: Path) -> None:
    """medzsad pull DEST writes DEST/<StudyInstanceUID>/; run -i DEST (or one such folder) then reads it."""
    from medzsad.cohort.inputs import collect_studies
    from medzsad.config import load_cohort
    from medzsad.io.discovery import discover

    uids = []
    for name in ("CT_small.dcm", "MR_small.dcm"):
        src = Path(str(get_testdata_file(name)))
        uid = str(pydicom.dcmread(src, stop_before_pixels=True).StudyInstanceUID)
        (tmp_path / "dest" / uid).mkdir(parents=True)
        shutil.copy(src, tmp_path / "dest" / uid / "1.dcm")
        (tmp_path / "dest" / uid / pull.COMPLETE_MARK).write_text("{}")
        uids.append(uid)
    for path in (tmp_path / "dest", tmp_path / "dest" / uids[0]):
        cohort = tmp_path / "c.yaml"
        cohort.write_text(f"name: c\ninputs: {{paths: [{path}]}}\n")
        ids = [s.study_id for s in collect_studies(load_cohort(cohort))]
        assert ids and all(uid not in i for i in ids for uid in uids), ids
        assert all(i.startswith("study-") for i in ids), ids
    skipped = {Path(s.path).name: s.reason for s in discover(tmp_path / "dest").skipped}
    assert skipped[pull.COMPLETE_MARK] == "medzsad pull's record of a complete study (not a scan)"
