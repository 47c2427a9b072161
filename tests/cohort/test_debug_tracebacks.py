"""``-vv --show-ids`` shows the traceback of a failed study and of a failed optional output.

Worker and writer processes send exceptions without their frames, and have no log handler: the
traceback travels as text to the main process, which logs it at debug level, with ``--show-ids``
only (it names files: docs/privacy.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medzsad.cli import EXIT_FAILED_STUDIES, main
from medzsad.cohort.launch import run_cohort

from .conftest import blob_volume, write_cohort_yaml


def _broken_and_ok(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08\x00 broken")
    vol, _ = blob_volume((24, 20, 6), 3, lesion=False)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), data / "ok.nii.gz")
    cfg = write_cohort_yaml(tmp_path / "c.yaml", tmp_path / "unused.csv", tmp_path / "out")
    paths = f"paths: [{data / 'broken.nii.gz'}, {data / 'ok.nii.gz'}]"
    text = cfg.read_text().replace(f"manifest: {tmp_path / 'unused.csv'}", paths)
    cfg.write_text(text + "executor: {workers: 1}\n")  # the study is read in a worker process
    return cfg


@pytest.mark.parametrize("show_ids", [True, False])
def test_a_load_failure_in_a_worker_shows_its_traceback_with_show_ids_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, show_ids: bool
) -> None:
    cfg = _broken_and_ok(tmp_path)
    caplog.set_level(logging.DEBUG)
    args = ["-vv", "run", str(cfg)] + (["--show-ids"] if show_ids else [])
    assert main(args) == EXIT_FAILED_STUDIES
    debug = [r.getMessage() for r in caplog.records if r.getMessage().startswith("traceback of study")]
    if not show_ids:
        assert debug == [] and "Traceback (most recent call last)" not in caplog.text
        return
    assert len(debug) == 1
    text = debug[0]
    # the frames are the worker's: where the file was read, down to the typed error
    assert "Traceback (most recent call last)" in text and "in read_study" in text and "in find_study" in text
    assert text.rstrip().splitlines()[-1].startswith("medzsad.errors.NiftiError:")


def test_a_failed_optional_output_shows_its_traceback_with_show_ids(
    seg_cohort, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = seg_cohort("heatmap, mask, dicom-seg", show_ids=True)
    caplog.set_level(logging.DEBUG)
    summary = run_cohort(cfg)
    assert (summary.n_done, summary.n_output_failures) == (1, 1)
    text = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("traceback of study"))
    assert "optional output dicom-seg:" in text and "in broken_seg" in text
    assert "forced SEG failure" in text
