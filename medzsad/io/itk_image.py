"""NRRD, MetaImage (``.mha``/``.mhd``) and other SimpleITK-readable volumes -> :class:`Volume`.

SimpleITK gives origin/spacing/direction in LPS and ``GetArrayFromImage`` indexes ``[k, j, i]``;
the volume keeps ``[i, j, k]`` and ``affine_ras = diag(-1, -1, 1, 1) @ affine_lps``.
"""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from medzsad.errors import NiftiError
from medzsad.io.geometry import affine_ras_from_lps
from medzsad.io.guard import foreign_errors
from medzsad.io.itk_headers import check_itk_header
from medzsad.io.nifti import check_affine, check_finite, path_id, select_volume
from medzsad.io.volume import SourceInfo, Volume

__all__ = ["load_itk", "affine_lps_of"]


def affine_lps_of(image: sitk.Image) -> np.ndarray:
    """``(4, 4)`` voxel -> LPS affine of the first three dimensions of a SimpleITK image."""
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)[:3]
    a = np.eye(4)
    a[: min(dim, 3), : min(dim, 3)] = (direction * spacing)[: min(dim, 3), : min(dim, 3)]
    a[: min(dim, 3), 3] = np.asarray(image.GetOrigin(), dtype=np.float64)[:3]
    return a


def load_itk(path: str, volume_index: int | None = None) -> Volume:
    """Read a volume through SimpleITK.

    Raises:
        NiftiError: Unreadable file, vector (colour) pixels, zero size, NaN values, 4D without index.
    """
    check_itk_header(path)
    with foreign_errors(path, "read the image with SimpleITK", NiftiError):
        image = sitk.ReadImage(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise NiftiError(
            f"{path}: pixels have {image.GetNumberOfComponentsPerPixel()} components (vector/colour image); "
            "medzsad reads scalar volumes"
        )
    with foreign_errors(path, "convert the SimpleITK image", NiftiError):
        arr = sitk.GetArrayFromImage(image)
        data = np.ascontiguousarray(arr.T).astype(np.float32)  # [k, j, i] -> [i, j, k]
        affine_lps = affine_lps_of(image)
    data = select_volume(data, path, volume_index, "image size")
    check_finite(data, path, "voxel data")
    if image.GetDimension() == 2:
        affine_lps[2, 2] = 1.0
    check_affine(affine_lps, path, "origin/spacing/direction")
    affine = affine_ras_from_lps(affine_lps)
    k = data.shape[2]
    pos = (affine_lps @ np.c_[np.zeros((k, 2)), np.arange(k), np.ones(k)].T).T[:, :3]
    uid = path_id(path)
    src = SourceInfo(paths=(os.path.abspath(path),), kind="itk", study_uid=uid, series_uid=uid)
    return Volume(data, affine, "", src, pos)
