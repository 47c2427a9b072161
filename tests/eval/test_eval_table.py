from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medzsad.eval.evaluation import ClassPredictions, PredictionAccumulator, metrics_table
from medzsad.eval.table import MetricsRow, MetricsTable


def _preds(seed: int, with_masks: bool) -> ClassPredictions:
    rng = np.random.default_rng(seed)
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = rng.random(6) + labels * 0.5
    if not with_masks:
        return ClassPredictions(labels, scores)
    masks = np.zeros((6, 16, 16), dtype=bool)
    masks[labels == 1, 4:9, 4:9] = True
    maps = (rng.random((6, 16, 16)) + masks).astype(np.float32)
    return ClassPredictions(labels, scores, masks, maps)


def test_table_rows_mean_and_formats(tmp_path) -> None:
    preds = {"a": _preds(0, True), "b": _preds(1, False)}
    t = metrics_table(preds)
    assert t.value("a", "image_auroc") == pytest.approx(
        roc_auc_score(preds["a"].labels, preds["a"].scores), abs=1e-12
    )
    # b has no masks -> pixel metrics undefined; the mean ignores it
    assert math.isnan(t.value("b", "pixel_auroc"))
    assert t.value("mean", "pixel_auroc") == t.value("a", "pixel_auroc")
    assert t.value("mean", "image_ap") == pytest.approx(
        (t.value("a", "image_ap") + t.value("b", "image_ap")) / 2
    )
    md = t.to_markdown()
    assert md.splitlines()[0].startswith("| class | images | anomalous | image AUROC")
    assert "| mean | 12 | 6 |" in md
    assert "n/a" in md
    t.to_csv(tmp_path / "m.csv")
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert [r["class"] for r in rows] == ["a", "b", "mean"]
    assert float(rows[0]["image_auroc"]) == t.value("a", "image_auroc")
    assert rows[1]["pixel_auroc"] == ""
    assert t.to_dict()["rows"][1]["pixel_auroc"] is None
    assert "a/pixel_threshold" in t.extras


def test_accumulator_groups_by_class_and_skips_unknown_masks() -> None:
    acc = PredictionAccumulator()
    masks = np.zeros((3, 4, 4))
    maps = np.ones((3, 4, 4))
    acc.add(["x", "y", "x"], np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3]), masks, maps, [True, True, False])
    res = acc.result()
    assert list(res) == ["x", "y"]
    assert res["x"].labels.tolist() == [0, 1]
    assert res["x"].scores.tolist() == [0.1, 0.3]
    assert res["x"].masks.shape == (1, 4, 4)
    assert res["y"].maps.shape == (1, 4, 4)


def test_single_row_has_no_mean_and_missing_row_raises() -> None:
    t = MetricsTable(("image_auroc",), (MetricsRow("only", {"image_auroc": 0.5}, 2, 1),))
    assert "mean" not in t.to_markdown()
    assert t.to_markdown().splitlines()[2] == "| only | 2 | 1 | 50.0 |"
    with pytest.raises(KeyError):
        t.value("nope", "image_auroc")
