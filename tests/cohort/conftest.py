"""Small cohorts built by the tests: a DICOM MR series, NIfTI volumes and one corrupt study."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tiny_model import TINY_MODEL

from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series


def blob_volume(shape: tuple[int, int, int], seed: int, lesion: bool) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid 'head' with texture, and optionally a bright sphere; returns (data, mask)."""
    rng = np.random.default_rng(seed)
    g = np.indices(shape).astype(np.float32)
    c = (np.array(shape, dtype=np.float32) - 1) / 2
    r = ((g - c[:, None, None, None]) / (np.array(shape)[:, None, None, None] * 0.42)) ** 2
    head = r.sum(0) <= 1.0
    data = np.where(head, 400.0 + 50.0 * rng.standard_normal(shape), 0.0).astype(np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    if lesion:
        centre = c + np.array([3.0, -2.0, 1.0])
        sph = ((g - centre[:, None, None, None]) ** 2).sum(0) <= 9.0
        data[sph] = 900.0
        mask[sph] = 1
    return data, mask


def make_cohort(
    root: Path, *, n_nifti: int = 2, corrupt: bool = True, shape=(28, 24, 10)
) -> dict[str, object]:
    """Write the studies and a manifest; returns paths and the DICOM affine."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["study_id,path,label,mask"]
    # DICOM MR series with an oblique-free but flipped, anisotropic geometry
    dcm_data, dcm_mask = blob_volume(shape, 1, lesion=True)
    a_lps = np.array([[0.9, 0, 0, -12.5], [0, 1.1, 0, 20.0], [0, 0, 3.0, -40.0], [0, 0, 0, 1.0]])
    write_dicom_series(dcm_data, a_lps, root / "dicom_study", SeriesSpec("MR", "e2e-dicom", "e2e-dicom"))
    affine_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ a_lps
    nib.save(nib.Nifti1Image(dcm_mask, affine_ras), root / "dicom_study_mask.nii.gz")
    rows.append("Dicom Study/01,dicom_study,1,dicom_study_mask.nii.gz")
    for i in range(n_nifti):
        data, mask = blob_volume(shape, 10 + i, lesion=i % 2 == 1)
        aff = np.diag([1.2, 1.0, 2.5, 1.0])
        aff[:3, 3] = [-15.0, -12.0, -10.0 - i]
        nib.save(nib.Nifti1Image(data, aff), root / f"vol{i}.nii.gz")
        nib.save(nib.Nifti1Image(mask, aff), root / f"vol{i}_mask.nii.gz")
        rows.append(f"nifti-{i},vol{i}.nii.gz,{i % 2},vol{i}_mask.nii.gz")
    if corrupt:
        (root / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not a nifti file")
        rows.append("broken-study,broken.nii.gz,0,")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return {
        "manifest": root / "manifest.csv",
        "dicom_dir": root / "dicom_study",
        "dicom_affine_ras": affine_ras,
    }


def write_cohort_yaml(path: Path, manifest: Path, out: Path, name: str = "e2e", extra: str = "") -> Path:
    path.write_text(
        f"name: {name}\ninputs:\n  manifest: {manifest}\n{TINY_MODEL}"
        f"output:\n  dir: {out}\n"
        f"  threshold: {{method: percentile, value: 99.0, min_lesion_ml: 0.0}}\n{extra}"
    )
    return path


@pytest.fixture()
def cohort(tmp_path: Path) -> dict[str, object]:
    info = make_cohort(tmp_path / "data")
    info["yaml"] = write_cohort_yaml(tmp_path / "cohort.yaml", info["manifest"], tmp_path / "out")
    info["out"] = tmp_path / "out"
    return info


@pytest.fixture()
def seg_cohort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``(outputs, show_ids) -> cohort file``: one DICOM study whose DICOM SEG writer raises.

    The run writes in this process (``workers: 0``): the patch reaches it only.
    """
    from medzsad.errors import OutputError
    from medzsad.report import review_outputs

    def broken_seg(mask: object, volume: object, out_path: Path, **kwargs: object) -> None:
        raise OutputError(f"{out_path}: forced SEG failure for the test")

    monkeypatch.setattr(review_outputs, "write_dicom_seg", broken_seg)
    info = make_cohort(tmp_path / "data", n_nifti=0, corrupt=False, shape=(20, 16, 6))

    def cohort(outputs: str, show_ids: bool = False) -> Path:
        extra = f"  outputs: [{outputs}]\n" + ("  show_ids: true\n" if show_ids else "")
        extra += "executor: {workers: 0}\n"
        return write_cohort_yaml(tmp_path / "c.yaml", info["manifest"], tmp_path / "out", extra=extra)

    return cohort
