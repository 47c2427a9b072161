"""Body coordinate of slices: level-matched whatever the voxel order."""

from __future__ import annotations

import numpy as np
import pytest

from medzsad.errors import GeometryError
from medzsad.references.positions import body_coordinates


def test_head_first_and_feet_first_agree_on_anatomy() -> None:
    up = np.diag([2.0, 2.0, 3.0, 1.0])
    down = up.copy()
    down[2, 2] = -3.0  # slice k of the flipped scan is slice n-1-k of the other
    idx = np.arange(2, 9)
    a = body_coordinates(up, 2, idx)
    b = body_coordinates(down, 2, idx)
    assert a.dtype == np.float32 and a[0] == 0.0 and a[-1] == 1.0
    np.testing.assert_allclose(b, a[::-1])
    np.testing.assert_allclose(a, (idx - 2) / 6.0, rtol=0, atol=1e-7)


def test_single_slice_and_degenerate_axis() -> None:
    assert body_coordinates(np.eye(4), 2, np.array([5])).tolist() == [0.5]
    bad = np.eye(4)
    bad[:3, 1] = 0.0
    with pytest.raises(GeometryError):
        body_coordinates(bad, 1, np.array([0, 1]))
