"""Conformal p-values, quantiles and Benjamini–Hochberg: formulas and validity on simulated scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medzsad.calibration.conformal import (
    benjamini_hochberg,
    conformal_p_values,
    conformal_quantile,
    conformal_rank,
    min_normals,
)
from medzsad.errors import ConfigError


def test_p_value_formula_by_hand() -> None:
    cal = np.array([0.1, 0.5, 0.5, 0.9])
    p = conformal_p_values(cal, np.array([0.95, 0.9, 0.5, 0.3, 0.0]))
    # (1 + #{cal >= s}) / (n + 1)
    assert p.tolist() == [1 / 5, 2 / 5, 4 / 5, 4 / 5, 5 / 5]


@pytest.mark.parametrize(("alpha", "need"), [(0.05, 19), (0.1, 9), (0.2, 4), (0.3, 3), (0.5, 1), (0.01, 99)])
def test_min_normals_is_ceil_inverse_alpha_minus_one(alpha: float, need: int) -> None:
    assert min_normals(alpha) == need
    # exactly from this n on the conformal rank fits in the sample
    assert conformal_rank(need, alpha) <= need
    if need > 1:
        assert conformal_rank(need - 1, alpha) > need - 1


def test_quantile_is_kth_smallest_and_refuses_too_few() -> None:
    stats = np.array([0.7, 0.2, 0.9, 0.4, 0.6, 0.1, 0.3, 0.8, 0.5, 0.05])  # n = 10
    k = math.ceil(11 * 0.9 - 1e-9)  # alpha 0.1 -> k = 10
    assert conformal_quantile(stats, 0.1) == np.sort(stats)[k - 1] == 0.9
    assert conformal_quantile(stats, 0.2) == np.sort(stats)[math.ceil(11 * 0.8) - 1]
    with pytest.raises(ConfigError, match=r"needs at least 19 .*add 9 more"):
        conformal_quantile(stats, 0.05, what="stratum 'all'")


def _bh_reference(p: np.ndarray, alpha: float) -> np.ndarray:
    m = len(p)
    order = np.argsort(p)
    k_star = 0
    for k in range(1, m + 1):
        if p[order[k - 1]] <= alpha * k / m:
            k_star = k
    out = np.zeros(m, dtype=bool)
    out[order[:k_star]] = True
    return out


@pytest.mark.parametrize("seed", range(8))
def test_benjamini_hochberg_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 1, 30), rng.uniform(0, 0.01, seed * 3)])
    for alpha in (0.05, 0.2):
        assert benjamini_hochberg(p, alpha).tolist() == _bh_reference(p, alpha).tolist()


def test_benjamini_hochberg_ignores_nan() -> None:
    p = np.array([0.001, np.nan, 0.04, 0.5])
    # m = 3 (NaN not counted): 0.001 <= 0.05/3, 0.04 <= 0.1 -> both rejected
    assert benjamini_hochberg(p, 0.15).tolist() == [True, False, True, False]


_TRIALS = 40_000


def _within(observed: float, expected: float, trials: int) -> bool:
    sd = math.sqrt(max(expected * (1 - expected), 1e-12) / trials)
    return abs(observed - expected) <= 4.5 * sd


@pytest.mark.parametrize("alpha", [0.1, 0.2])
@pytest.mark.parametrize("n", [4, 9, 10, 19, 24, 40, 57, 99, 150])
def test_validity_on_exchangeable_scores(n: int, alpha: float) -> None:
    """Normal test scores exchangeable with n calibration scores: flag and any-lesion rates are exact."""
    if n < min_normals(alpha):
        with pytest.raises(ConfigError):
            conformal_quantile(np.zeros(n), alpha)
        return
    rng = np.random.default_rng(n * 7 + int(alpha * 100))
    cal = rng.standard_normal((_TRIALS, n))
    test = rng.standard_normal(_TRIALS)
    p = (1 + (cal >= test[:, None]).sum(axis=1)) / (n + 1)
    assert np.allclose(p[:50], [conformal_p_values(c, np.array([t]))[0] for c, t in zip(cal[:50], test[:50])])
    expected = math.floor(alpha * (n + 1) + 1e-9) / (n + 1)  # exact without ties
    flagged = float(np.mean(p <= alpha))
    assert flagged <= alpha + 4.5 * math.sqrt(alpha * (1 - alpha) / _TRIALS)
    assert _within(flagged, expected, _TRIALS)
    k = conformal_rank(n, alpha)
    tau = np.sort(cal, axis=1)[:, k - 1]
    lesion = float(np.mean(test >= tau))
    assert _within(lesion, (n + 1 - k) / (n + 1), _TRIALS)
    assert lesion <= alpha + 4.5 * math.sqrt(alpha * (1 - alpha) / _TRIALS)


@pytest.mark.parametrize("n", [9, 30])
def test_p_values_stay_valid_with_ties(n: int) -> None:
    rng = np.random.default_rng(n)
    cal = rng.integers(0, 4, (_TRIALS, n)).astype(float)
    test = rng.integers(0, 4, _TRIALS).astype(float)
    p = (1 + (cal >= test[:, None]).sum(axis=1)) / (n + 1)
    for alpha in (0.1, 0.2, 0.3):
        assert float(np.mean(p <= alpha)) <= alpha + 4.5 * math.sqrt(alpha * (1 - alpha) / _TRIALS)
