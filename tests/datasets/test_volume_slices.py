from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medzsad.datasets import VolumeSliceDataset, open_labelled, read_volume_cases
from medzsad.errors import ConfigError, InputError

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
    # the lesion spans i 4..9 (24 -> 28: columns ~5..11) and j 2..5 (20 -> 28: rows ~3..8)
    assert 2 <= int(rows.min()) and int(rows.max()) <= 9 and 4 <= int(cols.min()) and int(cols.max()) <= 12
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
