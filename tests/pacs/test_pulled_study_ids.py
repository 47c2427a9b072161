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
