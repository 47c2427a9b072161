"""Issue 22 acceptance: the "PACS export zoo" through ``medzsad inspect`` and ``medzsad run -i --smoke``.

One folder holds 25 real-file studies and mixtures (:mod:`export_zoo`): CT, enhanced MR, CR, US,
NM and palette secondary captures, a NIfTI file, a PACS-style export of a CT with its scout, a SEG,
a capture and an SR, medzsad's own SEG and map after a re-pull, four copies of one instance, a
lossy and an original copy, the issue's damaged JPEG 2000, a truncated file, RT, SEG-only and SR-only
studies, studies with too few slices. Each study is either scored, with the heat map on exactly the
geometry SimpleITK reads for the chosen series, or refused with one line naming the file and the
reason; inspect's choice equals run's, and inspect's verdict equals run's.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from export_zoo import ZooStudy, build_zoo

from medzsad.cli import EXIT_FAILED_STUDIES, main

TOL_MM = 1e-4


def _sitk_image(files: tuple[Path, ...]) -> sitk.Image:
    if len(files) == 1:
        return sitk.ReadImage(str(files[0]))
    reader = sitk.ImageSeriesReader()
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    names = reader.GetGDCMSeriesFileNames(str(files[0].parent), uid)
    reader.SetFileNames([n for n in names if Path(n) in set(files)])
    return reader.Execute()


def _ras_grid(image: sitk.Image) -> tuple[np.ndarray, tuple[int, ...]]:
    """SimpleITK's voxel -> RAS affine and ``(I, J, K)`` size (a 2D image is one slice)."""
    dim = image.GetDimension()
    direction = np.eye(3)
    direction[:dim, :dim] = np.asarray(image.GetDirection()).reshape(dim, dim)
    spacing, origin = np.ones(3), np.zeros(3)
    spacing[:dim], origin[:dim] = image.GetSpacing(), image.GetOrigin()
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = direction * spacing, origin
    size = (*image.GetSize(), *([1] * (3 - dim)))
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine, tuple(int(x) for x in size)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ZooStudy]]:
    root = tmp_path_factory.mktemp("export") / "zoo"
    return root, build_zoo(root)


def _study_id(study: ZooStudy) -> str:
    """Several studies in one folder are named after their own subfolders (a PACS export's layout)."""
    return study.name


def test_the_zoo_is_scored_or_refused_in_one_line_and_inspect_agrees_with_run(
    zoo, tmp_path: Path, capsys
) -> None:
    root, studies = zoo
    assert len(studies) >= 20 and sum(s.scored for s in studies) >= 10
    capsys.readouterr()
    assert main(["inspect", str(root), "--json"]) == EXIT_FAILED_STUDIES
    inspected = {s["study_id"]: s for s in json.loads(capsys.readouterr().out)["studies"]}
    assert main(["run", "-i", str(root), "-o", str(tmp_path / "out"), "--smoke", "-q"]) == EXIT_FAILED_STUDIES
    table = pd.read_csv(tmp_path / "out" / "studies.csv", keep_default_na=False, dtype=str).set_index(
        "study_id"
    )
    errors = pd.read_csv(tmp_path / "out" / "errors.csv", keep_default_na=False, dtype=str).set_index(
        "study_id"
    )
    assert len(table) == len(studies) == len(inspected)
    for study in studies:
        sid = _study_id(study)
        row = table.loc[sid]
        seen = inspected[sid]  # inspect names the study as run does
        would_run = seen["chosen_series"] is not None and seen["error"] is None
        assert would_run == study.scored == (row["status"] == "done"), (study.name, seen, row["error"])
        if study.scored:
            assert row["series_uid"] == seen["chosen_series"], study.name  # inspect's choice is run's
            heat = nib.load(tmp_path / "out" / "studies" / row["safe_id"] / "heatmap.nii.gz")
            affine, size = _ras_grid(_sitk_image(study.reference))
            assert heat.shape == size, study.name
            np.testing.assert_allclose(heat.affine, affine, atol=TOL_MM, err_msg=study.name)
            continue
        message = errors.loc[sid, "message"]
        assert "\n" not in message and study.why in message, (study.name, message)
        assert f"zoo/{study.name}/" in message, (study.name, message)  # names the file
        verdict = seen["error"] or "; ".join(r["reason"] for r in seen["rejected"])
        assert study.why in verdict, (study.name, verdict)  # inspect says the same
