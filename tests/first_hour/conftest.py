"""Small inputs for the first-hour tests: one NIfTI head, tiny-model cohort files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tiny_model import TINY_MODEL

__all__ = ["TINY_MODEL"]  # the first-hour tests import it from here


def head_volume(shape: tuple[int, int, int] = (24, 20, 8), seed: int = 0) -> np.ndarray:
    """A textured ellipsoid 'head' in HU-like values with a bright blob (float32, x-y-z)."""
    rng = np.random.default_rng(seed)
    g = np.indices(shape).astype(np.float32)
    c = (np.array(shape, dtype=np.float32) - 1) / 2
    r = (((g - c[:, None, None, None]) / (np.array(shape)[:, None, None, None] * 0.42)) ** 2).sum(0)
    data = np.where(r <= 1, 40.0 + 10.0 * rng.standard_normal(shape), -1000.0).astype(np.float32)
    blob = ((g - (c + 2)[:, None, None, None]) ** 2).sum(0) <= 4
    data[blob] = 90.0
    return data


def write_nifti(path: Path, shape: tuple[int, int, int] = (24, 20, 8)) -> Path:
    """Write :func:`head_volume` with 1.5 x 1.5 x 3 mm voxels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(head_volume(shape), np.diag([1.5, 1.5, 3.0, 1.0])), path)
    return path


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    """One small NIfTI scan."""
    return write_nifti(tmp_path / "scan" / "head.nii.gz")


@pytest.fixture
def formats_cohort(tmp_path: Path, scan: Path) -> Path:
    """A tiny-model cohort file that uses ``output.formats`` (the README's form)."""
    path = tmp_path / "cohort.yaml"
    path.write_text(
        f"name: fmt\ninputs: {{paths: [{scan}]}}\n{TINY_MODEL}output: {{formats: [nifti, png]}}\n"
    )
    return path


@pytest.fixture
def dicom_folder(tmp_path: Path) -> Path:
    """A small CT series (HU = stored - 1024) in its own folder."""
    from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series

    stored = (head_volume() + 1024.0).clip(0, 4000).astype(np.uint16)
    affine_lps = np.diag([1.5, 1.5, 3.0, 1.0])
    folder = tmp_path / "ct_series"
    write_dicom_series(
        stored, affine_lps, folder, SeriesSpec("CT", "i14-ct", "i14-ct", rescale_intercept=-1024.0)
    )
    return folder
