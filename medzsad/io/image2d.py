"""2D images (PNG, JPEG, TIFF, BMP) -> a one-slice :class:`Volume`.

Colour images are converted to luminance (Pillow mode ``L`` weights, ITU-R BT.601); 16-bit grey
PNGs keep their range. The geometry is SimpleITK's for such files: 1 mm pixels at the origin with
identity LPS direction, ``i`` along a row (image x) and ``j`` down the columns (image y).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from medzsad.errors import ImageError
from medzsad.io.geometry import affine_ras_from_lps
from medzsad.io.guard import foreign_errors
from medzsad.io.limits import check_bytes, current_limits
from medzsad.io.nifti import path_id
from medzsad.io.volume import SourceInfo, Volume

__all__ = ["load_image2d", "check_image_size", "IMAGE2D_SUFFIXES"]

IMAGE2D_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def check_image_size(path: str, width: int, height: int, bytes_per_pixel: int) -> None:
    """Refuse an image whose header claims more pixels than the read limits allow.

    Raises:
        ResourceLimitError: ``width x height x max(bytes_per_pixel, 4)`` over ``max_voxel_bytes``.
    """
    check_bytes(
        int(width) * int(height) * max(bytes_per_pixel, 4),
        current_limits().max_voxel_bytes,
        path,
        f"image size {width} x {height}",
    )


def load_image2d(path: str) -> Volume:
    """Read a 2D image file.

    Returns:
        ``Volume`` with ``data`` ``(W, H, 1)`` float32 (``data[x, y, 0] = image[y, x]``).

    Raises:
        ImageError: Unreadable, truncated, zero-size image, or more than one frame.
        ResourceLimitError: The image claims more pixels than the read limits allow.
    """
    with foreign_errors(path, "read the image", ImageError), Image.open(path) as im:
        n_frames = int(getattr(im, "n_frames", 1))
        if n_frames > 1:
            raise ImageError(f"{path}: image has {n_frames} frames; medzsad reads single-frame 2D images")
        check_image_size(path, im.size[0], im.size[1], len(im.getbands()) * 4)
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(im, dtype=np.float32)
        else:
            arr = np.asarray(im.convert("L"), dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0:
        raise ImageError(f"{path}: image size {arr.shape} is empty or not 2D")
    data = np.ascontiguousarray(arr.T[:, :, np.newaxis])
    uid = path_id(path)
    src = SourceInfo(
        paths=(os.path.abspath(path),), kind="image2d", study_uid=uid, series_uid=uid, patient_geometry=False
    )
    return Volume(data, affine_ras_from_lps(np.eye(4)), "", src, np.zeros((1, 3)))
