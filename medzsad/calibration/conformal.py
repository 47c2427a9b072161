"""Split-conformal p-values and quantiles, and the Benjamini–Hochberg procedure (pure numpy).

For a calibration sample ``c_1..c_n`` of normal studies and a new study with score ``s``, the
conformal p-value is ``p = (1 + #{i: c_i >= s}) / (n + 1)``. When the new study is normal and
exchangeable with the calibration normals, ``P(p <= alpha) <= alpha`` for every ``alpha``
(Vovk et al. 2005; Angelopoulos & Bates 2021, eq. 1; ties only make it more conservative).

The conformal quantile ``tau`` of statistics ``t_1..t_n`` is their ``k``-th smallest value with
``k = ceil((n + 1)(1 - alpha))``; a new exchangeable normal statistic exceeds it with probability
at most ``alpha`` (exactly ``floor(alpha (n+1)) / (n+1)`` when there are no ties).
"""

from __future__ import annotations

import math

import numpy as np

from medzsad.errors import ConfigError

__all__ = [
    "min_normals",
    "conformal_rank",
    "conformal_p_values",
    "conformal_quantile",
    "benjamini_hochberg",
]

# (n + 1)(1 - alpha) is computed in binary floating point: 10 * 0.9 = 9.000000000000002 must count as 9
_EPS = 1e-9


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1) (got {alpha})")


def min_normals(alpha: float) -> int:
    """Fewest calibration normals with which level ``alpha`` can be reached: ``ceil(1/alpha) - 1``.

    With ``n`` normals the smallest conformal p-value is ``1 / (n + 1)``, and the conformal rank
    ``ceil((n + 1)(1 - alpha))`` is at most ``n`` only from this ``n`` on.
    """
    _check_alpha(alpha)
    return max(math.ceil(1.0 / alpha - _EPS) - 1, 1)


def conformal_rank(n: int, alpha: float) -> int:
    """``k = ceil((n + 1)(1 - alpha))``: the rank (1-based, ascending) of the conformal quantile.

    Returns a value ``> n`` when ``n`` is too small for ``alpha`` (see :func:`min_normals`).
    """
    _check_alpha(alpha)
    return max(math.ceil((n + 1) * (1.0 - alpha) - _EPS), 1)


def conformal_p_values(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values of ``scores`` against the calibration scores.

    Args:
        calibration: ``(n,)`` float, scores of the calibration normals (``n >= 1``).
        scores: ``(m,)`` float, scores of the studies under test.

    Returns:
        ``(m,)`` float64 in ``[1/(n+1), 1]``: ``(1 + #{calibration >= s}) / (n + 1)``.
    """
    cal = np.sort(np.asarray(calibration, dtype=np.float64).ravel())
    s = np.asarray(scores, dtype=np.float64)
    n = cal.size
    if n == 0:
        raise ValueError("conformal p-values need at least one calibration score")
    n_ge = n - np.searchsorted(cal, s, side="left")
    return (1.0 + n_ge) / (n + 1.0)


def conformal_quantile(statistics: np.ndarray, alpha: float, *, what: str = "calibration set") -> float:
    """The conformal quantile: the ``ceil((n+1)(1-alpha))``-th smallest of ``statistics``.

    Args:
        statistics: ``(n,)`` float calibration statistics.
        alpha: Level in (0, 1).
        what: Named in the error (e.g. ``"stratum modality=CT of profile p"``).

    Raises:
        ConfigError: ``n`` is too small for ``alpha`` (the message says how many more normals).
    """
    t = np.sort(np.asarray(statistics, dtype=np.float64).ravel())
    n = t.size
    k = conformal_rank(n, alpha)
    if k > n:
        need = min_normals(alpha)
        raise ConfigError(
            f"{what}: {n} normals are too few for alpha {alpha:g}: it needs at least {need} "
            f"(ceil(1/alpha) - 1); add {need - n} more normal studies or use a larger alpha"
        )
    return float(t[k - 1])


def benjamini_hochberg(p_values: np.ndarray, alpha: float) -> np.ndarray:
    """Benjamini–Hochberg step-up at level ``alpha``: which hypotheses are rejected (flagged).

    Rejects the ``k*`` smallest p-values, ``k* = max{k: p_(k) <= k alpha / m}`` (Benjamini &
    Hochberg 1995). NaN p-values (no score) are never rejected and do not count in ``m``.

    Args:
        p_values: ``(m,)`` float p-values.
        alpha: FDR level in (0, 1).

    Returns:
        ``(m,)`` bool, True for rejected (flagged) studies.
    """
    _check_alpha(alpha)
    p = np.asarray(p_values, dtype=np.float64)
    ok = ~np.isnan(p)
    out = np.zeros(p.shape, dtype=bool)
    m = int(ok.sum())
    if m == 0:
        return out
    valid = p[ok]
    order = np.argsort(valid, kind="stable")
    below = valid[order] <= alpha * np.arange(1, m + 1) / m
    if not below.any():
        return out
    k_star = int(np.nonzero(below)[0].max()) + 1
    rejected = np.zeros(m, dtype=bool)
    rejected[order[:k_star]] = True
    out[np.nonzero(ok)[0]] = rejected
    return out
