from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medzsad.datasets import VolumeSliceDataset, open_labelled, read_volume_cases
from medzsad.errors import ConfigError, InputError
from medzsad.transforms.clip_input import clip_normalise

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def _write(path: Path, arr: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(arr, np.diag([0.8, 0.8, 2.5, 1.0])), str(path))


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    ct = rng.normal(40, 10, (24, 20, 5)).astype(np.float32)  # (I, J, K)
    ct[4:10, 2:6, 1:3] = 300.0  # bright lesion, not square: checks the (I, J) -> rows j transpose
    mask = np.zeros(ct.shape, np.uint8)
    mask[4:10, 2:6, 1:3] = 1
    _write(tmp_path / "ct1.nii.gz", ct)
    _write(tmp_path / "ct1_mask.nii.gz", mask)
    _write(tmp_path / "ct2.nii.gz", rng.normal(40, 10, (24, 20, 3)).astype(np.float32))
    (tmp_path / "cases.csv").write_text(
        "image,mask,label,class\nct1.nii.gz,ct1_mask.nii.gz,,liver\nct2.nii.gz,,normal,liver\n"
    )
    return tmp_path / "cases.csv"


def test_slices_labels_and_masks(cohort: Path) -> None:
    ds = VolumeSliceDataset(read_volume_cases(cohort), 28, MEAN, STD, window=(-160.0, 240.0))
    assert len(ds) == 8
    assert [s.label for s in ds.samples] == [0, 1, 1, 0, 0, 0, 0, 0]
    assert [s.slice_index for s in ds.samples] == [0, 1, 2, 3, 4, 0, 1, 2]
    assert all(s.mask_known for s in ds.samples)
    item = ds[1]
    assert item["image"].shape == (3, 28, 28) and item["mask"].shape == (28, 28)
    m = item["mask"]
    rows = torch.nonzero(m.any(dim=1)).flatten()
    cols = torch.nonzero(m.any(dim=0)).flatten()
    # display orientation (rows anterior -> posterior, columns right -> left) and a 24 x 24 letterbox
    # (20 rows padded by 2 on top): the lesion at i 4..9, j 2..5 lands at columns ~16..23, rows ~19..24
    assert 17 <= int(rows.min()) and int(rows.max()) <= 26 and 15 <= int(cols.min()) and int(cols.max()) <= 24
    assert int(cols.max() - cols.min()) > int(rows.max() - rows.min())
    # windowed: the lesion (300 HU > 240) is white where the mask is
    grey = item["image"][0] * STD[0] + MEAN[0]
    assert float(grey[m > 0].mean()) > 0.9 > float(grey[m == 0].mean())
    assert ds[0]["mask"].sum() == 0 and ds[0]["mask_known"]


def test_slice_step_and_case_without_mask_or_label(cohort: Path, tmp_path: Path) -> None:
    ds = VolumeSliceDataset(read_volume_cases(cohort), 28, MEAN, STD, slice_step=2)
    assert [s.slice_index for s in ds.samples] == [0, 2, 4, 0, 2]
    (tmp_path / "bad.csv").write_text("image,mask,label\nct2.nii.gz,,\n")
    with pytest.raises(InputError, match="mask or a label"):
        read_volume_cases(tmp_path / "bad.csv")


def test_open_labelled_volumes(cohort: Path) -> None:
    data = open_labelled(cohort, "volumes", 28, MEAN, STD)
    assert len(data.samples) == len(data.dataset) == 8
    with pytest.raises(ConfigError, match="open_labelled"):
        from medzsad.datasets import open_dataset

        open_dataset(cohort, "volumes")


def test_mismatched_mask_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "a.nii.gz", np.zeros((4, 4, 2), np.float32))
    _write(tmp_path / "m.nii.gz", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "c.csv").write_text("image,mask\na.nii.gz,m.nii.gz\n")
    with pytest.raises(InputError, match="same shape"):
        VolumeSliceDataset(read_volume_cases(tmp_path / "c.csv"), 28, MEAN, STD)


def test_training_slices_equal_run_model_inputs(tmp_path: Path) -> None:
    """A volume's training/evaluation slices are exactly the model inputs ``medzsad run`` scores."""
    from types import SimpleNamespace

    from medzsad.config import PipelineConfig
    from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series
    from medzsad.study.loading import prepare_study_slices
    from medzsad.study.reading import read_study
    from medzsad.study.types import StudyInput

    rng = np.random.default_rng(5)
    # a CT series in DICOM (stored = HU + 1024), anisotropic, LPS axes flipped against RAS, whose
    # BodyPartExamined (HEAD) makes run choose ct-head (brain window), not ct-abdomen
    hu = rng.normal(40, 30, (22, 18, 6)).astype(np.float32)
    hu[:3] = -1000.0  # air: some background, and CT by its data as well as its header
    a_lps = np.array([[0.7, 0, 0, 10.0], [0, 0.9, 0, -5.0], [0, 0, 2.0, 30.0], [0, 0, 0, 1.0]])
    write_dicom_series(
        hu + 1024.0,
        a_lps,
        tmp_path / "ct",
        SeriesSpec("CT", "ct", "ct", rescale_intercept=-1024, body_part="HEAD"),
    )
    # an MR-like NIfTI with an oblique-free, flipped affine, with empty slices to skip
    mr = np.zeros((20, 16, 7), np.float32)
    mr[4:16, 3:13, 1:6] = rng.uniform(100, 400, (12, 10, 5))
    nib.save(nib.Nifti1Image(mr, np.diag([-1.1, 0.9, 3.0, 1.0])), str(tmp_path / "mr.nii.gz"))
    (tmp_path / "cases.csv").write_text("image,label\nct,0\nmr.nii.gz,1\n")
    size, mean, std = 42, (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
    ds = VolumeSliceDataset(read_volume_cases(tmp_path / "cases.csv"), size, mean, std)
    scorer = SimpleNamespace(image_size=size, mean=mean, std=std)
    start = 0
    for name in ("ct", "mr.nii.gz"):
        study = StudyInput(name, str(tmp_path / name))
        read = read_study(study, PipelineConfig())
        assert read.preset.name == {"ct": "ct-head", "mr.nii.gz": "mr-brain"}[name]
        run = prepare_study_slices(study, read, scorer)  # type: ignore[arg-type]
        n = len(run.slice_index)
        mine = ds.samples[start : start + n]
        assert [s.slice_index for s in mine] == run.slice_index.tolist()
        model_input = clip_normalise(run.images, mean, std)  # what run feeds the model
        for i in range(n):
            assert torch.equal(ds[start + i]["image"], model_input[i]), (name, i)
        start += n
    assert start == len(ds)
    assert len(ds.samples) < 6 + 7  # the MR's empty slices are skipped, as run skips them
