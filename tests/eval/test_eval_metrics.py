from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pro_oracle import slow_pro_score
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from medzsad.analysis import metrics as M


def _random_case(rng: np.random.Generator, n: int, size: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        for _ in range(rng.integers(0, 4)):
            r, c = rng.integers(0, size, 2)
            h, w = rng.integers(1, max(2, size // 3), 2)
            masks[i, r : r + h, c : c + w] = 1
    maps = rng.random((n, size, size)).astype(dtype) + 0.8 * masks
    return masks, maps


# ---- sklearn equality -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_auroc_ap_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 2000))
    y = rng.random(n) < rng.uniform(0.05, 0.9)
    y[0], y[1] = True, False
    # quantised scores create many ties, the hard case for curve code
    s = np.round(rng.normal(size=n) + y * rng.uniform(0, 2), int(rng.integers(0, 3)))
    assert abs(M.auroc(y, s) - roc_auc_score(y, s)) < 1e-9
    assert abs(M.average_precision(y, s) - average_precision_score(y, s)) < 1e-9


def test_pixel_auroc_on_maps_equals_sklearn() -> None:
    masks, maps = _random_case(np.random.default_rng(3), 4, 40, np.float32)
    assert abs(M.auroc(masks, maps) - roc_auc_score(masks.ravel(), maps.ravel())) < 1e-9


def test_curve_reuse_gives_same_numbers() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = rng.random(300) + y
    c = M.binary_curve(y, s)
    assert M.auroc(c) == M.auroc(y, s)
    assert M.average_precision(c) == M.average_precision(y, s)
    assert c.n_pos == y.sum() and c.n_neg == (~y).sum()


def test_undefined_metrics_are_nan() -> None:
    assert math.isnan(M.auroc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(M.average_precision([0, 0], [0.1, 0.2]))
    assert math.isnan(M.f1_max([0, 0], [0.1, 0.2]).f1)
    with pytest.raises(ValueError, match="NaN"):
        M.auroc([0, 1], [0.1, float("nan")])


def test_perfect_and_inverted_scores() -> None:
    y = np.array([0, 0, 1, 1])
    assert M.auroc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert M.auroc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert M.average_precision(y, [0.1, 0.2, 0.8, 0.9]) == 1.0


# ---- F1-max and operating points ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_f1_max_is_best_threshold_by_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(200) < 0.4
    s = np.round(rng.random(200) + 0.5 * y, 2)
    best = max(f1_score(y, s >= t) for t in np.unique(s))
    res = M.f1_max(y, s)
    assert abs(res.f1 - best) < 1e-12
    assert abs(f1_score(y, s >= res.threshold) - res.f1) < 1e-12


def test_operating_point_youden_and_f1() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.6, 0.5, 0.7, 0.9])
    op = M.operating_point(y, s, method="youden")
    pred = s >= op.threshold
    assert op.sensitivity == pred[y == 1].mean()
    assert op.specificity == 1 - pred[y == 0].mean()
    assert op.sensitivity + op.specificity - 1 == pytest.approx(2 / 3)
    op_f1 = M.operating_point(y, s, method="f1")
    assert op_f1.f1 == pytest.approx(M.f1_max(y, s).f1)
    with pytest.raises(ValueError, match="youden"):
        M.operating_point(y, s, method="bogus")


def test_dice_iou_at_threshold() -> None:
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, :2, :2] = True  # 4 px
    maps = np.zeros((2, 4, 4))
    maps[0, :2, :3] = 1.0  # 6 px predicted, 4 overlap
    res = M.dice_iou(masks, maps, 0.5)
    assert res.dice == pytest.approx(2 * 4 / 10)
    assert res.iou == pytest.approx(4 / 6)
    # image 1 is empty in both -> 1.0
    assert res.dice_per_image == pytest.approx((0.8 + 1.0) / 2)
    assert res.iou_per_image == pytest.approx((4 / 6 + 1.0) / 2)


# ---- AUPRO -------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 3),
    size=st.integers(6, 24),
    dtype=st.sampled_from([np.float32, np.float64]),
    quantise=st.booleans(),
)
def test_aupro_equals_slow_definition(seed: int, n: int, size: int, dtype: type, quantise: bool) -> None:
    rng = np.random.default_rng(seed)
    masks, maps = _random_case(rng, n, size, dtype)
    if quantise:  # ties exactly on threshold values
        maps = (np.round(maps * 8) / 8).astype(dtype)
    fast = M.aupro(masks, maps)
    if not masks.any() or masks.all() or maps.min() == maps.max():
        assert math.isnan(fast)
        return
    with np.errstate(invalid="ignore", divide="ignore"):
        slow = slow_pro_score(masks, maps)
    if math.isnan(slow):
        assert math.isnan(fast)
    else:
        assert abs(fast - slow) < 1e-9


def test_aupro_known_values() -> None:
    masks = np.zeros((1, 10, 10), dtype=np.uint8)
    masks[0, 2:5, 2:5] = 1
    perfect = masks.astype(np.float64) + 0.5 * np.random.default_rng(0).random((1, 10, 10))
    assert M.aupro(masks, perfect) == pytest.approx(1.0)
    assert M.aupro(masks, perfect) == pytest.approx(slow_pro_score(masks, perfect), abs=1e-12)
    assert math.isnan(M.aupro(np.zeros((1, 5, 5)), np.random.default_rng(0).random((1, 5, 5))))


def test_aupro_accepts_channel_axis_and_float_masks() -> None:
    masks, maps = _random_case(np.random.default_rng(7), 2, 16, np.float32)
    masks[0, :3, :3] = 1
    a = M.aupro(masks, maps)
    b = M.aupro(masks[:, None].astype(np.float32), maps[:, None])
    assert a == b
    with pytest.raises(ValueError, match="shape"):
        M.aupro(masks, maps[:, :5])
