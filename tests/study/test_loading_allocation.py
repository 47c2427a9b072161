"""A worker reads the scan straight into its allocation (shared memory), so sending the study copies nothing.

The scan travels with the study to the main process and on to the writer. Copied into shared
memory only when the study was sent, the copy sat on top of the loader's peak (the cut slices
of every axis still alive); now it is made right after reading, in the scan's own memory order.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from tiny_model import TINY_MODEL

from medzsad.cohort.executors.local import stages, transport
from medzsad.cohort.inputs import collect_studies
from medzsad.config import load_cohort
from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series
from medzsad.study.loading import InputSpec, default_loader

SPEC = InputSpec(56, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _cohort(tmp_path: Path, kind: str):
    rng = np.random.default_rng(0)
    stored = (1024 + 40 + 20 * rng.standard_normal((96, 96, 32))).clip(0, 4095).astype(np.uint16)
    if kind == "dicom":
        spec = SeriesSpec("CT", "alloc", "alloc-study", rescale_intercept=-1024.0)
        write_dicom_series(stored, np.diag([0.8, 0.8, 2.0, 1.0]), tmp_path / "s", spec)
        path = "s"
    else:
        hu = stored.astype(np.int16) - 1024
        nib.save(nib.Nifti1Image(hu, np.diag([-0.8, -0.8, 2.0, 1.0])), tmp_path / "s.nii.gz")
        path = "s.nii.gz"
    (tmp_path / "m.csv").write_text(f"study_id,path\ns0,{path}\n")
    (tmp_path / "c.yaml").write_text(f"name: a\ninputs:\n  manifest: {tmp_path / 'm.csv'}\n{TINY_MODEL}")
    cfg = load_cohort(tmp_path / "c.yaml")
    return cfg, collect_studies(cfg)[0]


@pytest.mark.parametrize("kind", ["dicom", "nifti"])
def test_the_scan_is_read_into_the_allocation_in_its_own_memory_order(tmp_path: Path, kind: str) -> None:
    cfg, study = _cohort(tmp_path, kind)
    plain = default_loader(study, cfg, SPEC)
    made: list[torch.Tensor] = []

    def allocate(shape: tuple[int, ...]) -> torch.Tensor:
        made.append(torch.empty(shape, dtype=torch.float32))
        return made[-1]

    allocated = default_loader(study, cfg, SPEC, allocate)
    data = allocated.volume.data
    assert any(np.shares_memory(data, t.numpy()) for t in made)  # the scan is in an allocation
    assert data.strides == plain.volume.data.strides  # in the same memory order as read
    np.testing.assert_array_equal(data, plain.volume.data)
    assert torch.equal(allocated.images, plain.images)  # and the slices cut from it are the same


def test_in_a_worker_the_scan_is_a_shared_segment_that_is_sent_by_name(tmp_path: Path) -> None:
    cfg, study = _cohort(tmp_path, "dicom")
    transport.set_process_prefix(transport.new_prefix())
    try:
        prepared = default_loader(study, cfg, SPEC, stages._shared_images)
        data = prepared.volume.data
        assert data.nbytes >= transport.SHARED_MIN_BYTES  # 1.2 MB: large enough to go by shared memory
        # the segment's own buffer: send() passes it on as a hard link, without a copy
        assert data.ctypes.data in transport._forwardable
    finally:
        transport.set_process_prefix(None)
