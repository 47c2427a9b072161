"""Outputs opened by their real consumers: dciodvfy/dcentvfy, 3D Slicer's MRML storage, Orthanc.

One session fixture runs the review writers on a tiny shuffled CT series and keeps every file the
consumer tests open. The mask is the blob mask restricted to voxels brighter than the series
median, so each mask voxel is tied to the intensity of the source voxel it came from.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from medzsad.io.volume import Volume
from medzsad.report.nifti_writer import write_heatmap, write_mask
from medzsad.report.review_outputs import ReviewOutputs, write_review_outputs
from medzsad.report.seg_writer import write_dicom_seg

FORMATS = ("nifti", "dicom-seg", "dicom-pmap", "slicer", "png", "html")


def _series_lib() -> ModuleType:
    name = "medzsad_tests_dicom_series"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).parents[1] / "report_outputs" / "dicom_series.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it (apt-get install dicom3tools orthanc ...)")
    return path


@pytest.fixture(scope="session")
def require_tool() -> Callable[[str], str]:
    """``require_tool(name)``: path of a consumer executable; fails (never skips) when missing."""
    return _require_tool


@dataclass(frozen=True)
class DicomStudy:
    """A DICOM study run through the review writers."""

    series: object  # dicom_series.Series
    volume: Volume
    heat: np.ndarray
    mask: np.ndarray
    study_dir: Path
    outputs: ReviewOutputs
    heat_nifti: Path
    mask_nifti: Path
    extra_segs: dict[str, Path]
    enhanced_source: Path


@pytest.fixture(scope="session")
def series_lib() -> ModuleType:
    return _series_lib()


@pytest.fixture(scope="session")
def dicom_study(tmp_path_factory: pytest.TempPathFactory, series_lib: ModuleType) -> DicomStudy:
    root = tmp_path_factory.mktemp("consumers")
    series = series_lib.write_ct_series(root / "source", seed=7)
    volume = series_lib.volume_from_series(series)
    heat, blob = series_lib.blob_mask(volume.shape_ijk)
    mask = (blob.astype(bool) & (volume.data > np.median(volume.data))).astype(np.uint8)
    study = root / "study"
    study.mkdir()
    heat_nifti = write_heatmap(study / "heatmap.nii.gz", heat, volume.affine_ras)
    mask_nifti = write_mask(study / "mask.nii.gz", mask, volume.affine_ras)
    outputs = write_review_outputs(
        study, volume, heat, mask, FORMATS, threshold=0.5, heatmap_nifti=heat_nifti, mask_nifti=mask_nifti
    )
    extra = root / "extra"
    mf_volume = series_lib.multiframe_volume(volume, root / "enhanced_ct.dcm")
    extra_segs = {
        "keep_empty": write_dicom_seg(
            mask, volume, extra / "keep.dcm", threshold=0.5, keep_empty_frames=True
        ).path,
        "empty_mask": write_dicom_seg(np.zeros_like(mask), volume, extra / "empty.dcm", threshold=0.5).path,
        "multiframe_source": write_dicom_seg(mask, mf_volume, extra / "mf.dcm", threshold=0.5).path,
    }
    enhanced = Path(mf_volume.source.paths[0])
    return DicomStudy(
        series, volume, heat, mask, study, outputs, heat_nifti, mask_nifti, extra_segs, enhanced
    )
