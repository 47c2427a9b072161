"""ROC and precision-recall curves and score histograms as PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from medzsad.analysis import metrics as M
from medzsad.errors import OutputError
from medzsad.eval.evaluation import ClassPredictions
from medzsad.fileio import atomic_path

__all__ = ["SMOKE_TITLE", "plot_curves", "plot_histogram"]

logger = logging.getLogger(__name__)

_MAX_POINTS = 2000

#: Figure title of plots of random-weight results (``run`` labels its figures the same way).
SMOKE_TITLE = "SMOKE RUN - random weights"


def _figure():  # noqa: ANN202 - matplotlib types are optional
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: object, path: Path, smoke: bool = False) -> Path:
    plt = _figure()
    path = Path(path)
    if smoke:  # results of random weights are labelled as run's overlays are
        fig.suptitle(SMOKE_TITLE, color="tab:red", fontweight="bold")  # type: ignore[attr-defined]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    except OSError as e:
        raise OutputError(f"cannot write plot {path}: {e}") from e
    finally:
        plt.close(fig)  # type: ignore[arg-type]
    return path


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    n = arrays[0].size
    if n <= _MAX_POINTS:
        return list(arrays)
    idx = np.unique(np.linspace(0, n - 1, _MAX_POINTS).astype(np.int64))
    return [a[idx] for a in arrays]


def _levels(preds: Mapping[str, ClassPredictions]) -> dict[str, dict[str, M.BinaryCurve]]:
    out: dict[str, dict[str, M.BinaryCurve]] = {"image": {}, "pixel": {}}
    for name, p in preds.items():
        c = M.binary_curve(p.labels, p.scores)
        if c.n_pos and c.n_neg:
            out["image"][name] = c
        if p.masks is not None and p.maps is not None and p.masks.any() and not p.masks.all():
            out["pixel"][name] = M.binary_curve(p.masks, p.maps)
    return {k: v for k, v in out.items() if v}


def plot_curves(
    preds: Mapping[str, ClassPredictions], roc_path: Path, pr_path: Path, smoke: bool = False
) -> list[Path]:
    """ROC and PR curves per class, image level and pixel level where defined.

    Args:
        preds: class name -> predictions.
        roc_path: PNG file of the ROC curves.
        pr_path: PNG file of the precision-recall curves.
        smoke: Random weights: the figures are titled :data:`SMOKE_TITLE`.

    Returns:
        The files written (none when no curve is defined).
    """
    levels = _levels(preds)
    if not levels:
        logger.warning("no ROC/PR curve is defined (a single label and no masks); no curve plots written")
        return []
    plt = _figure()
    written = []
    for kind, path in (("roc", roc_path), ("pr", pr_path)):
        fig, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels), 4.5), squeeze=False)
        for ax, (level, curves) in zip(axes[0], levels.items()):
            for name, c in curves.items():
                tpr = np.concatenate([[0.0], c.tps / c.n_pos])
                if kind == "roc":
                    fpr = np.concatenate([[0.0], c.fps / c.n_neg])
                    x, y = _thin(fpr, tpr)
                    ax.plot(x, y, label=f"{name} (AUROC {M.auroc(c) * 100:.1f})")
                else:
                    prec = np.concatenate([[1.0], c.tps / (c.tps + c.fps)])
                    x, y = _thin(tpr, prec)
                    ax.plot(x, y, label=f"{name} (AP {M.average_precision(c) * 100:.1f})")
            if kind == "roc":
                ax.plot([0, 1], [0, 1], "k:", lw=0.8)
            ax.set_xlabel("false-positive rate" if kind == "roc" else "recall")
            ax.set_ylabel("true-positive rate" if kind == "roc" else "precision")
            ax.set_title(f"{level}-level {'ROC' if kind == 'roc' else 'precision-recall'}")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.01)
            ax.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
        written.append(_save(fig, path, smoke))
    return written


def plot_histogram(
    preds: Mapping[str, ClassPredictions], path: Path, threshold: float | None = None, smoke: bool = False
) -> Path:
    """Histogram of image scores, normal versus anomalous, with the operating threshold.

    Args:
        preds: class name -> predictions.
        path: PNG file.
        threshold: image-score threshold to mark, if any.
        smoke: Random weights: the figure is titled :data:`SMOKE_TITLE`.
    """
    plt = _figure()
    labels = np.concatenate([p.labels for p in preds.values()])
    scores = np.concatenate([p.scores for p in preds.values()])
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(float(scores.min()), float(scores.max()) + 1e-12, 40)
    for value, name, colour in ((0, "normal", "tab:blue"), (1, "anomalous", "tab:red")):
        sel = scores[labels == value]
        if sel.size:
            ax.hist(sel, bins=bins, alpha=0.6, color=colour, label=f"{name} (n={sel.size})")
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.4g}")
    ax.set_xlabel("image anomaly score")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    return _save(fig, path, smoke)
