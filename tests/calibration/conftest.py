"""Synthetic exchangeable normal studies and cohort files for the calibration tests (tiny random model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from tiny_model import TINY_MODEL

SHAPE = (32, 32, 8)
AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])


def synthetic_study(seed: int, *, ct_like: bool = False, lesion: bool = False) -> np.ndarray:
    """An ellipsoid 'head' with independent texture and intensity jitter: i.i.d. over seeds."""
    rng = np.random.default_rng(seed)
    g = np.indices(SHAPE).astype(np.float32)
    c = (np.array(SHAPE, dtype=np.float32) - 1) / 2
    r = ((g - c[:, None, None, None]) / (np.array(SHAPE)[:, None, None, None] * 0.42)) ** 2
    head = r.sum(0) <= 1.0
    gain = rng.uniform(0.85, 1.15)
    data = np.where(head, gain * (400.0 + 50.0 * rng.standard_normal(SHAPE)), 0.0)
    if lesion:
        sph = ((g - (c + np.array([3.0, -2.0, 1.0]))[:, None, None, None]) ** 2).sum(0) <= 9.0
        data[sph] = 1200.0
    if ct_like:
        data = np.where(head, data, -1000.0)
    return data.astype(np.float32)


def write_studies(root: Path, ids_seeds: list[tuple[str, int]], **kw: bool) -> Path:
    """Write NIfTI studies and a manifest ``study_id,path``; returns the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["study_id,path"]
    for sid, seed in ids_seeds:
        nib.save(nib.Nifti1Image(synthetic_study(seed, **kw), AFFINE), root / f"{sid}.nii.gz")
        rows.append(f"{sid},{sid}.nii.gz")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def cohort_yaml(
    path: Path, manifest: Path, out: Path, name: str, output_extra: str = "", extra: str = ""
) -> Path:
    """A cohort file with the tiny model; ``output_extra`` lines go under ``output:``."""
    path.write_text(
        f"name: {name}\ninputs:\n  manifest: {manifest}\n{TINY_MODEL}"
        f"output:\n  dir: {out}\n  threshold: {{method: fixed, value: 0.5, min_lesion_ml: 0.05}}\n"
        f"{output_extra}{extra}"
    )
    return path


def normals_profile(root: Path, name: str, first_seed: int, n: int, extra: str) -> Any:
    """Write ``n`` normal studies under ``root`` and build their profile (``extra``: cohort sections)."""
    import medzsad.api as mz
    from medzsad.cohort.options import RunOptions

    normals = write_studies(root / "normals", [(f"normal-{i:03d}", first_seed + i) for i in range(n)])
    normals_yaml = cohort_yaml(root / "normals.yaml", normals, root / "normals-run", name, "", extra)
    return mz.build_profile(normals_yaml, options=RunOptions(progress="off"))


@pytest.fixture(scope="session")
def calib_helpers() -> dict[str, Callable[..., object]]:
    """The helpers above, for test modules (conftest modules are not importable under importlib)."""
    return {
        "write_studies": write_studies,
        "cohort_yaml": cohort_yaml,
        "synthetic_study": synthetic_study,
        "normals_profile": normals_profile,
    }
