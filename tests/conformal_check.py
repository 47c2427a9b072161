"""The conformal validity check shared by the calibration tests: many random splits of stored numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def assert_valid_over_splits(
    studies: Sequence[Mapping[str, Any]], n_cal: int, alpha: float, seed: int
) -> None:
    """1000 random calibration/test splits of the profile's studies (``score``, ``lesion_statistic``).

    Asserts that the p-value rule flags, and the lesion threshold exceeds, at most ``alpha + 0.02``
    of the held-out normals on average, and not trivially (at least ``alpha - 0.05``), and that the
    numbers are spread (not all tied), without which the check would mean nothing.
    """
    scores = np.array([s["score"] for s in studies])
    stats = np.array([s["lesion_statistic"] for s in studies])
    n = len(scores)
    assert len(np.unique(scores)) >= n - 2 and len(np.unique(stats)) >= n - 2
    rng = np.random.default_rng(seed)
    k = math.ceil((n_cal + 1) * (1 - alpha) - 1e-9)
    flagged, lesion = [], []
    for _ in range(1000):
        perm = rng.permutation(n)
        cal, test = perm[:n_cal], perm[n_cal:]
        p = (1 + (scores[cal][None, :] >= scores[test][:, None]).sum(1)) / (n_cal + 1)
        flagged.append(np.mean(p <= alpha))
        tau = np.sort(stats[cal])[k - 1]
        lesion.append(np.mean(stats[test] >= tau))
    assert np.mean(flagged) <= alpha + 0.02 and np.mean(lesion) <= alpha + 0.02
    assert np.mean(flagged) >= alpha - 0.05 and np.mean(lesion) >= alpha - 0.05
