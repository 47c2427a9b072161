"""AUPRO: per-region overlap up to a false-positive-rate limit (the reference ``cal_pro_score``).

Split from :mod:`medzsad.analysis.metrics`, which re-exports :func:`aupro`, :func:`aupro_regions` and
:func:`aupro_thresholds`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from skimage import measure

__all__ = ["aupro", "aupro_regions", "aupro_thresholds"]

# numpy >= 2.0 names it trapezoid; numpy 1.x only has trapz.
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # type: ignore[attr-defined]

ArrayLike = npt.ArrayLike


def aupro_thresholds(maps: np.ndarray, max_step: int = 200) -> np.ndarray:
    """The thresholds of the reference ``cal_pro_score``: ``np.arange(min, max, (max - min) / max_step)``.

    Computed with the maps' own dtype, exactly as the reference does, so that binarising against them
    gives the same pixels. Usually ``max_step`` values, occasionally one more because of rounding.

    Args:
        maps: (N, H, W) anomaly maps, float.
        max_step: number of threshold steps between the minimum and maximum.

    Returns:
        (T,) increasing thresholds, same dtype as ``np.arange`` gives for the maps' scalars.
    """
    min_th, max_th = maps.min(), maps.max()
    delta = (max_th - min_th) / max_step
    return np.arange(min_th, max_th, delta)


def _check_pro_inputs(masks: ArrayLike, maps: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(masks)
    a = np.asarray(maps)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if m.ndim != 3 or m.shape != a.shape:
        raise ValueError(
            f"AUPRO needs masks and maps of the same (N, H, W) shape; got {m.shape} and {a.shape}"
        )
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    if np.isnan(a).any():
        raise ValueError("anomaly maps contain NaN; AUPRO is undefined")
    return (m > 0.5) if m.dtype.kind == "f" else m.astype(bool), a


def aupro(masks: ArrayLike, maps: ArrayLike, max_step: int = 200, expect_fpr: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to a false-positive rate, normalised to [0, 1].

    The reference definition (AnomalyCLIP ``metrics.cal_pro_score``, after CFLOW-AD): at each of the
    thresholds of :func:`aupro_thresholds`, a pixel is predicted anomalous when ``map > threshold``;
    PRO is the mean, over every connected ground-truth region of every image (8-connectivity), of the
    fraction of the region predicted anomalous; FPR is the fraction of normal pixels predicted
    anomalous. The points with ``FPR < expect_fpr`` are kept, their FPRs rescaled by min-max to [0, 1],
    and the trapezoidal area under PRO(FPR) returned.

    The reference binarises every map at every threshold and relabels the masks each time; here the
    masks are labelled once and each pixel's threshold index is found with one ``searchsorted``, so the
    per-region and normal-pixel counts for all thresholds come from one ``bincount`` and a reversed
    cumulative sum. The counts are identical integers, hence the same value, far faster.

    Args:
        masks: (N, H, W) ground truth, bool or {0, 1} (floats binarised at 0.5); (N, 1, H, W) accepted.
        maps: (N, H, W) anomaly maps, real values; (N, 1, H, W) accepted.
        max_step: number of threshold steps (200 in the reference).
        expect_fpr: FPR limit (0.3 in the reference and the paper).

    Returns:
        AUPRO in [0, 1]; ``nan`` when there is no anomalous region, no normal pixel, constant maps, or
        fewer than two distinct FPRs below the limit (where the reference divides by zero).
    """
    m, a = _check_pro_inputs(masks, maps)
    return aupro_regions(list(m), list(a), max_step, expect_fpr)


def aupro_regions(
    masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], max_step: int = 200, expect_fpr: float = 0.3
) -> float:
    """:func:`aupro` over samples of any shape: 2D images or 3D volumes, each its own shape.

    Every connected ground-truth region (full connectivity: 8 in 2D, 26 in 3D) of every sample is one
    region; thresholds span the global minimum and maximum of all maps (the reference grid). For a
    list of 2D images this is exactly :func:`aupro`.

    Args:
        masks: Ground truth per sample, bool or {0, 1} (floats binarised at 0.5).
        maps: Anomaly maps, one per mask and of the same shape, real values.
        max_step: number of threshold steps (200 in the reference).
        expect_fpr: FPR limit (0.3 in the reference and the paper).

    Returns:
        AUPRO in [0, 1], or ``nan`` when undefined (see :func:`aupro`).
    """
    m = [
        np.asarray(x) > 0.5 if np.asarray(x).dtype.kind == "f" else np.asarray(x).astype(bool) for x in masks
    ]
    a = [np.asarray(x) if np.asarray(x).dtype.kind == "f" else np.asarray(x, dtype=np.float64) for x in maps]
    if len(m) != len(a) or any(x.shape != y.shape for x, y in zip(m, a)):
        raise ValueError("AUPRO needs one map per mask, each of its mask's shape")
    if any(np.isnan(x).any() for x in a):
        raise ValueError("anomaly maps contain NaN; AUPRO is undefined")
    if not m or not any(x.any() for x in m) or all(x.all() for x in m):
        return float("nan")
    extremes = np.array([min(x.min() for x in a), max(x.max() for x in a)])
    if extremes[0] == extremes[1]:
        return float("nan")
    ths = aupro_thresholds(extremes, max_step)
    n_th = ths.size
    region_hist: list[np.ndarray] = []
    region_area: list[np.ndarray] = []
    neg_hist = np.zeros(n_th + 1, dtype=np.int64)
    for mask, amap in zip(m, a):
        # idx = number of thresholds strictly below the value: the pixel is "on" for thresholds 0..idx-1.
        idx = np.searchsorted(ths, amap, side="left")
        neg_hist += np.bincount(idx[~mask], minlength=n_th + 1)
        labels = measure.label(mask)
        n_regions = int(labels.max())
        if n_regions == 0:
            continue
        on = labels > 0
        flat = (labels[on].astype(np.int64) - 1) * (n_th + 1) + idx[on]
        hist = np.bincount(flat, minlength=n_regions * (n_th + 1)).reshape(n_regions, n_th + 1)
        region_hist.append(hist)
        region_area.append(np.bincount(labels[on], minlength=n_regions + 1)[1:])
    hist = np.concatenate(region_hist)
    area = np.concatenate(region_area)
    # above[:, k] = pixels with idx > k, i.e. value > ths[k]
    above = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    pros = (above / area[:, None]).mean(axis=0)
    fp = np.cumsum(neg_hist[::-1])[::-1][1:]
    fprs = fp / int(sum(int((~x).sum()) for x in m))
    return _pro_area(fprs, pros, expect_fpr)


def _pro_area(fprs: np.ndarray, pros: np.ndarray, expect_fpr: float) -> float:
    keep = fprs < expect_fpr
    f = fprs[keep]
    p = pros[keep]
    if f.size < 2 or f.max() == f.min():
        return float("nan")
    f = (f - f.min()) / (f.max() - f.min())
    # FPR decreases with the threshold; integrate in increasing order as sklearn.metrics.auc does.
    return float(_trapezoid(p[::-1], f[::-1]))
