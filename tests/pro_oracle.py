"""The AUPRO definition written out directly, as the reference code computes it.

Binarise at every one of 200 thresholds, relabel, and average each region's overlap (AnomalyCLIP
``metrics.cal_pro_score``). Slow on purpose: the oracle that :func:`medzsad.analysis.metrics.aupro`
is tested against (tests/eval) and timed against (bench/aupro_bench.py).
"""

from __future__ import annotations

import numpy as np
from skimage import measure
from sklearn.metrics import auc


def slow_pro_score(
    masks: np.ndarray, amaps: np.ndarray, max_step: int = 200, expect_fpr: float = 0.3
) -> float:
    """The definition, written out directly: binarise at every threshold, relabel, average overlaps."""
    binary_amaps = np.zeros_like(amaps, dtype=bool)
    min_th, max_th = amaps.min(), amaps.max()
    delta = (max_th - min_th) / max_step
    pros, fprs = [], []
    for th in np.arange(min_th, max_th, delta):
        binary_amaps[amaps <= th], binary_amaps[amaps > th] = 0, 1
        pro = []
        for binary_amap, mask in zip(binary_amaps, masks):
            for region in measure.regionprops(measure.label(mask)):
                tp_pixels = binary_amap[region.coords[:, 0], region.coords[:, 1]].sum()
                pro.append(tp_pixels / region.area)
        inverse_masks = 1 - masks
        fp_pixels = np.logical_and(inverse_masks, binary_amaps).sum()
        fprs.append(fp_pixels / inverse_masks.sum())
        pros.append(np.array(pro).mean())
    pros_a, fprs_a = np.array(pros), np.array(fprs)
    keep = fprs_a < expect_fpr
    f = fprs_a[keep]
    f = (f - f.min()) / (f.max() - f.min())
    return float(auc(f, pros_a[keep]))
