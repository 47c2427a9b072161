"""2D images (PNG, JPEG, TIFF, BMP) -> a one-slice :class:`Volume`.

Colour images are converted to luminance (Pillow mode ``L`` weights, ITU-R BT.601); 16-bit grey
PNGs keep their range. The geometry is SimpleITK's for such files: 1 mm pixels at the origin with
identity LPS direction, ``i`` along a row (image x) and ``j`` down the columns (image y).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from medzsad.errors import InputError
from medzsad.io.geometry import affine_ras_from_lps
from medzsad.io.nifti import path_id
from medzsad.io.volume import SourceInfo, Volume

__all__ = ["load_image2d", "IMAGE2D_SUFFIXES"]

IMAGE2D_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def load_image2d(path: str) -> Volume:
    """Read a 2D image file.

    Returns:
        ``Volume`` with ``data`` ``(W, H, 1)`` float32 (``data[x, y, 0] = image[y, x]``).

    Raises:
        InputError: Unreadable, truncated, zero-size image, or more than one frame.
    """
    try:
        with Image.open(path) as im:
            n_frames = int(getattr(im, "n_frames", 1))
            if n_frames > 1:
                raise InputError(f"{path}: image has {n_frames} frames; medzsad reads single-frame 2D images")
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im, dtype=np.float32)
            else:
                arr = np.asarray(im.convert("L"), dtype=np.float32)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise InputError(f"{path}: cannot read the image ({type(e).__name__}: {e})") from e
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"{path}: image size {arr.shape} is empty or not 2D")
    data = np.ascontiguousarray(arr.T[:, :, np.newaxis])
    uid = path_id(path)
    src = SourceInfo(paths=(os.path.abspath(path),), kind="image2d", study_uid=uid, series_uid=uid)
    return Volume(data, affine_ras_from_lps(np.eye(4)), "", src, np.zeros((1, 3)))
