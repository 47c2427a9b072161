"""NIfTI heat maps (float32) and masks (uint8 label maps) in the exact geometry of the source scan.

Both sform and qform are set with code 1 (scanner anatomical) whenever the affine is a rotation
times a scaling, so 3D Slicer, ITK and nibabel read the same geometry. A sheared affine (gantry
tilt) cannot be stored in the qform; then only the sform is set (qform code 0). Every file is
re-read after writing and its shape and affine compared with the source's.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from medzsad.errors import GeometryError, OutputError
from medzsad.fileio import gzip_bytes, write_bytes

__all__ = ["nifti_bytes", "write_heatmap", "write_mask", "AFFINE_TOL_MM"]

#: Tolerance of the re-read check: the header stores the affine in float32.
AFFINE_TOL_MM = 1e-3


def _qform_representable(affine: np.ndarray) -> bool:
    m = affine[:3, :3]
    cols = m / np.linalg.norm(m, axis=0, keepdims=True)
    return bool(np.allclose(cols.T @ cols, np.eye(3), atol=1e-6))


def nifti_bytes(data: np.ndarray, affine_ras: np.ndarray, *, description: str = "") -> bytes:
    """Encode a volume as a gzipped NIfTI-1 file (deterministic bytes).

    Args:
        data: ``(I, J, K)`` array in the source's voxel order; its dtype is kept.
        affine_ras: ``(4, 4)`` voxel -> RAS mm.
        description: Text for the header's ``descrip`` field (at most 79 characters kept).
    """
    img = nib.Nifti1Image(np.asarray(data), np.asarray(affine_ras, dtype=np.float64))
    hdr = img.header
    hdr.set_xyzt_units("mm", "sec")
    img.set_sform(affine_ras, code=1)
    if _qform_representable(affine_ras):
        img.set_qform(affine_ras, code=1)
    else:
        img.set_qform(affine_ras, code=0)
    hdr["descrip"] = description.encode("ascii", "replace")[:79]
    return gzip_bytes(img.to_bytes())


def _verify(path: Path, shape: tuple[int, ...], affine_ras: np.ndarray, dtype: np.dtype) -> None:
    try:
        img = cast(nib.Nifti1Image, nib.load(str(path)))
    except Exception as e:  # nibabel raises many types for a corrupt file
        raise OutputError(f"{path}: written NIfTI cannot be re-read ({e}); check the disk") from e
    if tuple(img.shape) != tuple(shape) or img.get_data_dtype() != dtype:
        raise OutputError(
            f"{path}: re-read shape/dtype {img.shape}/{img.get_data_dtype()} != {shape}/{dtype}"
        )
    if not np.allclose(img.affine, affine_ras, atol=AFFINE_TOL_MM):
        raise GeometryError(
            f"{path}: re-read affine differs from the source's:\n{img.affine}\nvs\n{affine_ras}"
        )
    if img.header["sform_code"] != 1:
        raise OutputError(f"{path}: sform_code is {img.header['sform_code']}, expected 1 (scanner)")


def write_heatmap(
    path: str | Path, heat: np.ndarray, affine_ras: np.ndarray, *, description: str = ""
) -> Path:
    """Write ``heat`` (``(I, J, K)``, values in [0, 1]) as float32 NIfTI with the source affine."""
    data = np.asarray(heat, dtype=np.float32)
    if data.ndim != 3:
        raise OutputError(f"{path}: heat map must be (I, J, K), got shape {data.shape}")
    p = write_bytes(path, nifti_bytes(data, affine_ras, description=description))
    _verify(p, data.shape, affine_ras, np.dtype(np.float32))
    return p


def write_mask(
    path: str | Path, labels: np.ndarray, affine_ras: np.ndarray, *, description: str = ""
) -> Path:
    """Write a label map (``(I, J, K)``; 0 background, 1..255 lesion labels) as uint8 NIfTI."""
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise OutputError(f"{path}: mask must be (I, J, K), got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise OutputError(f"{path}: mask labels must be in 0..255, found {arr.min()}..{arr.max()}")
    data = arr.astype(np.uint8)
    p = write_bytes(path, nifti_bytes(data, affine_ras, description=description))
    _verify(p, data.shape, affine_ras, np.dtype(np.uint8))
    return p
