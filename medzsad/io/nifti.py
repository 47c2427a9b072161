"""NIfTI-1/2 files (``.nii``, ``.nii.gz``) -> :class:`Volume`, sform/qform chosen as nibabel does.

nibabel's ``img.affine`` is the sform when its code is > 0, else the qform when its code is > 0,
else a scaling-only fallback; ``data`` keeps nibabel's ``[i, j, k]`` indexing, so the affine maps it
unchanged. Intensities are scaled by ``scl_slope``/``scl_inter`` (``get_fdata``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

import nibabel as nib
import numpy as np

from medzsad.errors import NiftiError, UnsupportedInputError
from medzsad.io.guard import foreign_errors
from medzsad.io.nifti_header import check_nifti_header
from medzsad.io.volume import SourceInfo, Volume

__all__ = ["load_nifti", "path_id", "select_volume"]

log = logging.getLogger(__name__)


def path_id(path: str) -> str:
    """A stable id for a non-DICOM file (used as study and series uid)."""
    return "file-" + hashlib.sha256(os.path.abspath(path).encode("utf-8")).hexdigest()[:16]


def select_volume(data: np.ndarray, path: str, volume_index: int | None, field: str) -> np.ndarray:
    """Reduce 2D/3D/4D data to ``(I, J, K)``.

    Raises:
        NiftiError: Zero-size data, more than 4 dimensions, 4D without ``volume_index`` (unless the
            4th dimension is 1), or an index out of range.
    """
    if data.size == 0 or 0 in data.shape:
        raise NiftiError(f"{path}: {field} has zero size (shape {data.shape}); the file holds no image")
    while data.ndim > 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        return data[:, :, np.newaxis]
    if data.ndim == 3:
        if volume_index not in (None, 0):
            raise NiftiError(f"{path}: volume_index {volume_index} given but the image is 3D {data.shape}")
        return data
    if data.ndim == 4:
        n = data.shape[3]
        if volume_index is None:
            if n == 1:
                return data[..., 0]
            raise NiftiError(
                f"{path}: {field} is 4D {data.shape} ({n} volumes); medzsad scores one 3D volume: save "
                f"the one to score as its own file (e.g. nibabel's img.slicer[..., i], i in 0..{n - 1}), "
                "or load it in Python with medzsad.io.readers.load_volume(path, volume_index=i)"
            )
        if not 0 <= volume_index < n:
            raise NiftiError(
                f"{path}: volume_index {volume_index} out of range 0..{n - 1} of {field} {data.shape}"
            )
        return data[..., volume_index]
    raise NiftiError(f"{path}: {field} has {data.ndim} dimensions {data.shape}; expected 2, 3 or 4")


def check_finite(data: np.ndarray, path: str, field: str, error: type[Exception] = NiftiError) -> None:
    """Raise when the voxel data holds NaN or infinite values."""
    if not np.issubdtype(data.dtype, np.floating):
        return
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise error(
            f"{path}: {field} holds {bad} NaN/infinite value(s) of {data.size}; replace them (e.g. with 0) "
            "before running medzsad"
        )


def check_affine(affine: np.ndarray, path: str, field: str) -> None:
    """Raise when the affine is not finite or not invertible."""
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise NiftiError(f"{path}: {field} is not a valid voxel-to-world transform (singular or not finite)")


def load_nifti(path: str, volume_index: int | None = None) -> Volume:
    """Read a NIfTI file.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        volume_index: Which volume of a 4D file to load (required for 4D with more than one volume).

    Returns:
        ``Volume`` with float32 data ``(I, J, K)`` and nibabel's affine.

    Raises:
        NiftiError: Unreadable/truncated file, zero size, NaN values, singular affine, 4D without index.
    """
    check_nifti_header(path)
    with foreign_errors(path, "read the NIfTI file", NiftiError):
        img: Any = nib.load(path)
        header: Any = img.header
        if img.affine is None or not hasattr(header, "get_qform"):
            raise UnsupportedInputError(
                f"{path}: {type(img).__name__} has no voxel-to-world affine (not a NIfTI volume)"
            )
        data = np.asarray(img.get_fdata(dtype=np.float32))
        affine = np.asarray(img.affine, dtype=np.float64)
    data = select_volume(data, path, volume_index, "voxel data (dim[1..4])")
    check_finite(data, path, "voxel data")
    sform_code = int(header["sform_code"]) if "sform_code" in header else 0
    qform_code = int(header["qform_code"]) if "qform_code" in header else 0
    field = (
        "sform (srow_x/y/z)" if sform_code > 0 else ("qform (quatern_b/c/d)" if qform_code > 0 else "pixdim")
    )
    check_affine(affine, path, field)
    warnings = () if (sform_code or qform_code) else ("no sform/qform: scaling-only affine from pixdim",)
    uid = path_id(path)
    k = data.shape[2]
    pos_ras = (affine @ np.c_[np.zeros((k, 2)), np.arange(k), np.ones(k)].T).T[:, :3]
    pos_lps = pos_ras * np.array([-1.0, -1.0, 1.0])
    src = SourceInfo(paths=(os.path.abspath(path),), kind="nifti", study_uid=uid, series_uid=uid)
    # nibabel's Fortran-order array as it is (the file's voxel order: no copy of the volume)
    return Volume(np.asarray(data, dtype=np.float32), affine, "", src, pos_lps, warnings)
