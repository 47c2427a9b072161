"""The demo cohort, written from real anatomy without network access.

The MNI152 T1 template (shipped inside the nilearn wheel) as NIfTI and as a DICOM MR series,
copies with synthetic spherical lesions of known centre and radius (and their masks), and a
CT-like phantom series in HU. A ``manifest.csv`` lists every study with its label (0 normal,
1 lesion) and mask, so the demo run can report its own metrics.

``normals/`` holds normal variants of the template (independent noise, intensity scale and offset)
listed in ``normals.csv``: enough for a site profile (``medzsad profile cohorts/demo-normals.yaml``)
at alpha 0.05 with few-shot references (docs/calibration.md follows it end to end).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series
from medzsad.errors import InputError
from medzsad.fileio import write_csv, write_text
from medzsad.io.volume import LPS_TO_RAS
from medzsad.report.nifti_writer import write_heatmap, write_mask

__all__ = [
    "DemoStudy",
    "DemoCohort",
    "Sphere",
    "mni_template",
    "ct_phantom",
    "add_spheres",
    "write_demo_data",
    "write_normals",
    "DEMO_NORMALS",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sphere:
    """A synthetic lesion: centre in RAS mm, radius in mm, intensity change (fraction or HU)."""

    centre_ras_mm: tuple[float, float, float]
    radius_mm: float
    delta: float


@dataclass(frozen=True)
class DemoStudy:
    """One study of the demo cohort (a manifest row)."""

    study_id: str
    path: str
    label: int
    mask: str
    lesions: tuple[Sphere, ...]


@dataclass(frozen=True)
class DemoCohort:
    """What :func:`write_demo_data` wrote.

    Attributes:
        root: The folder.
        manifest: ``manifest.csv`` of the review studies.
        studies: The review studies.
        normals_manifest: ``normals.csv`` of the normal studies (for a site profile).
        n_normals: How many normal studies it lists.
    """

    root: Path
    manifest: Path
    studies: tuple[DemoStudy, ...]
    normals_manifest: Path | None = None
    n_normals: int = 0


#: Normal studies written by default: a profile at alpha 0.05 needs 19 for calibration, plus the
#: few-shot references of ``cohorts/demo-normals.yaml`` (4), plus one to spare.
DEMO_NORMALS = 24


def mni_template(resolution: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 template as MR-like intensities (0..1000) and its RAS affine.

    Args:
        resolution: Voxel size in mm (nilearn resamples the packaged 1 mm template).

    Returns:
        ``(data (I, J, K) float32 in [0, 1000], affine_ras (4, 4))``.
    """
    try:
        from nilearn.datasets import load_mni152_template
    except ImportError as e:
        raise InputError("the demo needs nilearn (pip install nilearn); it ships the MNI152 template") from e
    img = load_mni152_template(resolution=resolution)
    data = np.asarray(img.get_fdata(), dtype=np.float32)
    data = data / max(float(data.max()), 1e-6) * 1000.0
    return data, np.asarray(img.affine, dtype=np.float64)


def ct_phantom(
    shape: tuple[int, int, int] = (96, 96, 32), spacing_mm: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like abdomen phantom in HU: air, fat, soft tissue, a liver, a spine and a hypodense cyst.

    Returns:
        ``(data (I, J, K) float32 HU, affine_ras (4, 4))`` with 3 mm in-plane voxels and 4 mm slices.
    """
    ni, nj, nk = shape
    ii, jj = np.meshgrid(np.arange(ni) - ni / 2 + 0.5, np.arange(nj) - nj / 2 + 0.5, indexing="ij")
    body = (ii / (0.45 * ni)) ** 2 + (jj / (0.35 * nj)) ** 2 <= 1.0
    inner = (ii / (0.41 * ni)) ** 2 + (jj / (0.31 * nj)) ** 2 <= 1.0
    liver = ((ii + 0.18 * ni) / (0.17 * ni)) ** 2 + ((jj + 0.05 * nj) / (0.14 * nj)) ** 2 <= 1.0
    spine = (ii / (0.06 * ni)) ** 2 + ((jj - 0.22 * nj) / (0.06 * nj)) ** 2 <= 1.0
    sl = np.full((ni, nj), -1000.0, dtype=np.float32)
    sl[body] = -100.0
    sl[inner] = 40.0
    sl[liver] = 60.0
    sl[spine] = 700.0
    data = np.repeat(sl[:, :, None], nk, axis=2)
    data += np.random.default_rng(7).normal(0, 8, data.shape).astype(np.float32) * (data > -900)
    affine = np.diag([-spacing_mm, -spacing_mm, 4.0, 1.0])  # i -> patient left, j -> posterior (LPS-like)
    affine[:3, 3] = [spacing_mm * ni / 2, spacing_mm * nj / 2, -4.0 * nk / 2]
    return data, affine


def add_spheres(
    data: np.ndarray, affine_ras: np.ndarray, spheres: tuple[Sphere, ...], *, relative: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Add spherical lesions.

    Args:
        data: ``(I, J, K)`` image.
        affine_ras: Its voxel -> RAS affine.
        spheres: Lesions; ``delta`` is a fraction of the local value (``relative``) or added (HU).
        relative: Multiply by ``1 + delta`` instead of adding ``delta``.

    Returns:
        ``(changed image, mask (I, J, K) uint8 with 1 inside any sphere)``.
    """
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij"), axis=-1).astype(
        np.float64
    )
    ras = ijk @ affine_ras[:3, :3].T + affine_ras[:3, 3]
    out = data.astype(np.float32).copy()
    mask = np.zeros(data.shape, dtype=np.uint8)
    for s in spheres:
        inside = np.linalg.norm(ras - np.array(s.centre_ras_mm), axis=-1) <= s.radius_mm
        out[inside] = out[inside] * (1.0 + s.delta) if relative else out[inside] + s.delta
        mask[inside] = 1
    return out, mask


def _to_dicom_grid(data: np.ndarray, affine_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip a RAS-ordered grid so that i -> patient left and j -> posterior, as DICOM usually is."""
    a_lps = LPS_TO_RAS @ affine_ras
    out, aff = data, a_lps.copy()
    for ax in (0, 1):
        if aff[ax, ax] < 0:
            n = out.shape[ax]
            out = np.flip(out, axis=ax)
            aff[:3, 3] = aff[:3, 3] + aff[:3, ax] * (n - 1)
            aff[:3, ax] = -aff[:3, ax]
    return np.ascontiguousarray(out), aff


def _write_study(
    root: Path,
    sid: str,
    data: np.ndarray,
    affine_ras: np.ndarray,
    mask: np.ndarray | None,
    dicom: SeriesSpec | None,
    folder: str = "nifti",
) -> tuple[str, str]:
    """Write one study (NIfTI file or DICOM folder, plus mask NIfTI in the same geometry)."""
    mask_rel = ""
    if dicom is None:
        rel = f"{folder}/{sid}.nii.gz"
        (root / folder).mkdir(parents=True, exist_ok=True)
        write_heatmap(root / rel, data, affine_ras, description="medzsad demo (synthetic)", dtype="float32")
        grid_affine, grid_mask = affine_ras, mask
    else:
        rel = f"dicom/{sid}"
        grid, a_lps = _to_dicom_grid(data, affine_ras)
        write_dicom_series(grid - dicom.rescale_intercept, a_lps, root / rel, dicom)
        grid_affine = LPS_TO_RAS @ a_lps
        grid_mask = None if mask is None else _to_dicom_grid(mask, affine_ras)[0]
    if grid_mask is not None:
        (root / "masks").mkdir(parents=True, exist_ok=True)
        mask_rel = f"masks/{sid}_mask.nii.gz"
        write_mask(root / mask_rel, grid_mask, grid_affine, description="medzsad demo lesion mask")
    return rel, mask_rel


def _mr_spec(sid: str) -> SeriesSpec:
    return SeriesSpec(
        "MR", uid_seed=sid, study_seed=sid, patient_id=sid.upper()[:16], series_description="T1 MNI152"
    )


def write_normals(root: Path, mni: np.ndarray, affine: np.ndarray, n: int) -> Path:
    """Write ``n`` normal variants of the template to ``normals/`` and list them in ``normals.csv``.

    Each gets its own seeded Gaussian noise (sigma 1-3 % of the range), intensity scale (0.9-1.1)
    and offset (+-20), as scans of healthy subjects on one scanner differ; no lesion.
    """
    rows = []
    for i in range(n):
        rng = np.random.default_rng(1000 + i)
        sigma = float(rng.uniform(10.0, 30.0))
        img = mni * float(rng.uniform(0.9, 1.1)) + float(rng.uniform(-20.0, 20.0))
        img = np.clip(img + rng.normal(0.0, sigma, mni.shape).astype(np.float32), 0, None) * (mni > 0)
        sid = f"normal-{i + 1:02d}"
        rel, _ = _write_study(root, sid, img.astype(np.float32), affine, None, None, folder="normals")
        rows.append((sid, rel, 0, ""))
    table = pd.DataFrame(rows, columns=["study_id", "path", "label", "mask"])
    return write_csv(root / "normals.csv", table)


def write_demo_data(out_dir: str | Path, resolution: int = 2, normals: int = DEMO_NORMALS) -> DemoCohort:
    """Write the demo cohort into ``out_dir`` (created; existing files are overwritten).

    Studies: ``mni-normal`` (NIfTI), ``mni-normal-dicom`` (DICOM MR), ``mni-noisy`` (NIfTI, label
    0), ``mni-lesion-a`` (NIfTI, one lesion), ``mni-lesion-b-dicom`` (DICOM MR, two lesions) and
    ``ct-phantom-cyst`` (DICOM CT, one hypodense lesion). Masks live in ``masks/``. Plus
    ``normals`` normal studies for a site profile (``normals.csv``).

    Args:
        out_dir: Target folder.
        resolution: MNI template voxel size in mm (2 by default; 4 for a very small demo).
        normals: Normal studies to write for a site profile (0: none).
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    mni, aff = mni_template(resolution)
    noisy = np.clip(mni + np.random.default_rng(3).normal(0, 15, mni.shape).astype(np.float32), 0, None)
    lesion_a = (Sphere((30.0, -10.0, 20.0), 10.0, 0.8),)
    lesion_b = (Sphere((-25.0, 20.0, 10.0), 8.0, -0.6), Sphere((20.0, -40.0, 30.0), 6.0, 0.7))
    cyst = (Sphere((-25.0, 10.0, 0.0), 15.0, -45.0),)
    ct, ct_aff = ct_phantom()
    ct_spec = SeriesSpec(
        "CT", "ct-phantom-cyst", "ct-phantom-cyst", "CTPHANTOM", "CT abdomen phantom", -1024.0, 40.0, 400.0
    )
    plan = [
        ("mni-normal", mni, aff, (), True, None),
        ("mni-normal-dicom", mni, aff, (), True, _mr_spec("mni-normal-dicom")),
        ("mni-noisy", noisy, aff, (), True, None),
        ("mni-lesion-a", mni, aff, lesion_a, True, None),
        ("mni-lesion-b-dicom", mni, aff, lesion_b, True, _mr_spec("mni-lesion-b-dicom")),
        ("ct-phantom-cyst", ct, ct_aff, cyst, False, ct_spec),
    ]
    studies = []
    for sid, data, affine, spheres, relative, spec in plan:
        img, mask = add_spheres(data, affine, spheres, relative=relative)
        rel, mask_rel = _write_study(root, sid, img, affine, mask, spec)
        studies.append(DemoStudy(sid, rel, int(bool(spheres)), mask_rel, spheres))
        log.info("demo study %s written (%s)", sid, rel)
    table = pd.DataFrame(
        [(s.study_id, s.path, s.label, s.mask) for s in studies],
        columns=["study_id", "path", "label", "mask"],
    )
    manifest = write_csv(root / "manifest.csv", table)
    normals_csv = write_normals(root, mni, aff, normals) if normals > 0 else None
    _write_readme(root)
    return DemoCohort(root, manifest, tuple(studies), normals_csv, normals)


def _write_readme(root: Path) -> None:

    write_text(
        root / "README.txt",
        "medzsad demo cohort (synthetic; no patient data).\n"
        "MNI152 T1 template (ICBM 2009a, via nilearn) as NIfTI and DICOM MR, copies with spherical\n"
        "lesions (masks/), and a CT-like phantom in HU. manifest.csv: study_id,path,label,mask.\n"
        "normals/ and normals.csv: normal variants of the template for a site profile.\n"
        "Run: medzsad run cohorts/demo.yaml   (add --smoke to run it without weights)\n"
        "Profile: medzsad profile cohorts/demo-normals.yaml   (docs/calibration.md)\n",
    )
