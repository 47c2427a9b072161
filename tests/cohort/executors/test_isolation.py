"""Study isolation: a worker that crashes, hangs, runs out of memory or panics fails one study only."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medzsad.cli import EXIT_FAILED_STUDIES, main
from medzsad.cohort.executors.local.worker_pool import FAULT_ENV, WorkerPool
from medzsad.errors import ResourceLimitError, StudyWorkerError

from ..conftest import make_cohort, write_cohort_yaml

# the workers import torch (~4 GiB of address space): the limit leaves ~2 GiB for a study
MEMORY_GB = 6.0
LIMIT = f"(executor.worker_memory_gb: {MEMORY_GB:g})"


def _ndims_minus_3_mha(path: Path) -> None:
    """The fuzzing reproducer: SimpleITK never returns on this header (it segfaulted in older builds)."""
    path.write_bytes(
        b"ObjectType = Image\nNDims = -3\nDimSize = 4 4 4\nElementType = MET_SHORT\n"
        b"ElementDataFile = LOCAL\n" + bytes(128)
    )


def _header_bomb_nii(path: Path) -> None:
    """68 bytes of gzip whose NIfTI header claims 2048 x 2048 x 2560 int16 (21 GB)."""
    h = nib.Nifti1Header()
    h.set_data_shape((2048, 2048, 2560))
    h.set_data_dtype(np.int16)
    h.set_sform(np.eye(4), 1)
    path.write_bytes(gzip.compress(h.binaryblock + bytes(4)))


def test_crash_hang_memory_bomb_and_panic_fail_their_study_only(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    info = make_cohort(data, n_nifti=2, corrupt=False)
    _ndims_minus_3_mha(data / "hang.mha")
    _header_bomb_nii(data / "bomb.nii.gz")
    for i, marker in enumerate(("segv", "panic", "hang", "bomb")):
        shutil.copy(data / f"vol{i % 2}.nii.gz", data / f"{marker}-marker.nii.gz")
    bad = {"hang-file": "hang.mha", "bomb-file": "bomb.nii.gz"}
    bad.update({m: f"{m}-marker.nii.gz" for m in ("segv", "panic", "hang", "bomb")})
    manifest = Path(info["manifest"])
    manifest.write_text(manifest.read_text() + "".join(f"{k},{v},0,\n" for k, v in bad.items()))
    monkeypatch.setenv(FAULT_ENV, "segv:segv-marker,panic:panic-marker,hang:hang-marker,bomb:bomb-marker")
    extra = f"executor: {{workers: 2, study_timeout_s: 10, worker_memory_gb: {MEMORY_GB}}}\n"
    cfg = write_cohort_yaml(tmp_path / "c.yaml", manifest, tmp_path / "out", extra=extra)

    assert main(["run", str(cfg), "--quiet"]) == EXIT_FAILED_STUDIES
    assert "Traceback" not in capsys.readouterr().err

    out = tmp_path / "out"
    errors = pd.read_csv(out / "errors.csv").set_index("study_id")
    assert sorted(errors.index) == sorted(bad)
    msg, kind = errors["message"], errors["error_type"]
    # the real files: a typed error from the readers' limits, or the worker's limits if one gets past
    for study, name in (("hang-file", "hang.mha"), ("bomb-file", "bomb.nii.gz")):
        assert name in msg[study] and kind[study] in {"StudyWorkerError", "NiftiError", "ResourceLimitError"}
    # the test hook: each way a worker can die, named
    assert set(kind[["segv", "panic", "hang", "bomb"]]) == {"StudyWorkerError"}
    assert "crashed (signal 11, SIGSEGV) while reading" in msg["segv"]
    assert msg["segv"].endswith("segv-marker.nii.gz")
    assert "study_timeout_s" in msg["hang"] and "hang-marker.nii.gz" in msg["hang"]
    assert "out of memory (executor.worker_memory_gb: 6)" in msg["bomb"] and "bomb-marker" in msg["bomb"]
    assert "panicked" in msg["panic"] and "panic-marker.nii.gz" in msg["panic"]
    assert set(errors["stage"]) == {"load"}
    # the others completed, with every file, and the ledger holds no 'running' row
    studies = pd.read_csv(out / "studies.csv").set_index("study_id")
    assert (studies.loc[["Dicom Study/01", "nifti-0", "nifti-1"], "status"] == "done").all()
    assert len(list((out / "studies").glob("*/heatmap.nii.gz"))) == 3
    with sqlite3.connect(out / "ledger.sqlite") as con:
        states = dict(con.execute("SELECT study_id, state FROM studies").fetchall())
    assert sorted(s for s, st in states.items() if st == "failed") == sorted(bad)
    assert "running" not in states.values()


def test_outputs_do_not_depend_on_workers_or_batch_composition(tmp_path):
    from ..test_e2e import _digest

    info = make_cohort(tmp_path / "data", n_nifti=3, corrupt=True, shape=(28, 24, 7))
    runs = {
        "inline_b1": "executor: {workers: 0}\n",
        "pool_b5": "executor: {workers: 2, prefetch: 2, writers: 2}\n",
    }
    for name, extra in runs.items():
        batch = 1 if name.endswith("b1") else 5  # 5 slices per batch mixes the 7-slice studies
        cfg = write_cohort_yaml(tmp_path / f"{name}.yaml", info["manifest"], tmp_path / name, extra=extra)
        assert main(["run", str(cfg), "--quiet", "--batch-size", str(batch)]) == EXIT_FAILED_STUDIES
    a, b = (_digest(tmp_path / name / "studies") for name in runs)
    assert len(a) == 4 * 5
    # heat maps, masks, lesion tables and overlays: the same bytes
    assert {k: v for k, v in a.items() if "slices.csv" not in k} == {
        k: v for k, v in b.items() if "slices.csv" not in k
    }
    # slice scores: the CPU model's image-score head is not bitwise batch-invariant (one float32 ulp
    # between a batch of 1 and of 5); the engine's batch = single-image acceptance tightens this
    for study in sorted({k.split("/")[0] for k in a}):
        s1, s5 = (pd.read_csv(tmp_path / name / "studies" / study / "slices.csv") for name in runs)
        pd.testing.assert_frame_equal(s1, s5, check_exact=False, rtol=0, atol=1e-6)
    tables = [pd.read_csv(tmp_path / name / "studies.csv") for name in runs]
    cols = ["study_id", "rank", "lesion_count", "lesion_volume_ml", "status"]
    pd.testing.assert_frame_equal(tables[0][cols], tables[1][cols])
    np.testing.assert_allclose(tables[0]["score"], tables[1]["score"], rtol=0, atol=1e-6)
    errors = [pd.read_csv(tmp_path / name / "errors.csv") for name in runs]
    pd.testing.assert_frame_equal(errors[0], errors[1])


def _fill_memory_in_small_pieces() -> None:
    """A task that runs out of memory the way a decoder building many small objects does."""
    hog = []
    while True:
        hog.append(np.empty(4096, np.uint8))


def _fill_memory_inside_a_reader() -> None:
    from medzsad.io.guard import foreign_errors

    with foreign_errors("scan.nii", "read the voxels"):  # MemoryError -> ResourceLimitError, chained
        _fill_memory_in_small_pieces()


def _study_load_that_fills_memory() -> None:
    """The local executor's worker entry (load_in_worker) with a reader that runs out of memory."""
    from types import SimpleNamespace

    from medzsad.cohort.executors.local.stages import load_in_worker

    def reader(*_: object) -> None:
        _fill_memory_inside_a_reader()

    work = SimpleNamespace(loader=reader, cfg=None)
    load_in_worker(work, SimpleNamespace(study=None), None)  # type: ignore[arg-type]


def _worker_pid() -> int:
    import os

    return os.getpid()


@pytest.mark.parametrize(
    ("task", "reason", "message"),
    [
        (_fill_memory_in_small_pieces, "memory", f"worker ran out of memory {LIMIT} while task 1"),
        (_fill_memory_inside_a_reader, "", "scan.nii: ran out of memory trying to read the voxels"),
        (_study_load_that_fills_memory, "", "scan.nii: ran out of memory trying to read the voxels"),
    ],
)
def test_a_task_that_fills_the_limit_in_small_pieces_is_reported_out_of_memory(
    task: Callable[[], None], reason: str, message: str
) -> None:
    """The report was sent while the task's frames still held the memory: the worker died instead."""
    with WorkerPool(1, 120, MEMORY_GB) as pool:
        outcomes = []
        for key, fn in enumerate((_worker_pid, task, _worker_pid)):
            pool.submit(key, fn, (), f"task {key}")
            got: list = []
            while not got:  # a dead worker's outcome may take a second call
                got = pool.wait(120)
            outcomes.extend(got)
    first, filled, after = outcomes
    assert str(filled.error).startswith(message), filled.error
    if reason:
        assert isinstance(filled.error, StudyWorkerError) and filled.error.reason == reason
    else:
        assert isinstance(filled.error, ResourceLimitError)
    assert after.error is None and after.value == first.value  # the same worker goes on
