from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import SimpleITK as sitk

from medzsad.cli import main
from medzsad.datasets.demo_data import write_demo_data


def _sitk_series(folder):
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
    img = r.Execute()
    a = np.eye(4)
    a[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
    a[:3, 3] = img.GetOrigin()
    return sitk.GetArrayFromImage(img).transpose(2, 1, 0), np.diag([-1.0, -1.0, 1.0, 1.0]) @ a


def test_demo_data_geometry_lesions_and_manifest(tmp_path):
    demo = write_demo_data(tmp_path / "demo", resolution=4)
    table = pd.read_csv(demo.manifest)
    assert list(table.columns) == ["study_id", "path", "label", "mask"]
    assert table["label"].tolist() == [0, 0, 0, 1, 1, 1]
    nifti = nib.load(tmp_path / "demo" / "nifti" / "mni-normal.nii.gz")
    dicom, dicom_affine = _sitk_series(tmp_path / "demo" / "dicom" / "mni-normal-dicom")
    # the DICOM series is the same anatomy: every DICOM voxel maps to the same scanner point
    src = np.asarray(nifti.dataobj)
    ijk = np.array([[3, 5, 7, 1], [10, 12, 9, 1]]).T
    for col in ijk.T:
        ras = dicom_affine @ col
        nijk = np.rint(np.linalg.solve(nifti.affine, ras)[:3]).astype(int)
        assert abs(float(dicom[tuple(col[:3])]) - float(src[tuple(nijk)])) <= 1.0
    # lesion masks share the DICOM geometry and mark changed voxels
    mask = nib.load(tmp_path / "demo" / "masks" / "mni-lesion-b-dicom_mask.nii.gz")
    lesion, lesion_affine = _sitk_series(tmp_path / "demo" / "dicom" / "mni-lesion-b-dicom")
    np.testing.assert_allclose(mask.affine, lesion_affine, atol=1e-4)
    m = np.asarray(mask.dataobj) > 0
    assert m.shape == lesion.shape and m.sum() > 0
    assert np.abs(lesion[m] - dicom[m]).mean() > 50 and np.array_equal(lesion[~m], dicom[~m])
    ct, _ = _sitk_series(tmp_path / "demo" / "dicom" / "ct-phantom-cyst")
    assert ct.min() <= -990 and 500 < ct.max() < 900  # HU: air and spine


def test_demo_data_cli(tmp_path, capsys):
    assert main(["demo-data", str(tmp_path / "d"), "--resolution", "4"]) == 0
    assert "wrote 6 studies" in capsys.readouterr().out
