"""metrics.json: study- and voxel-level metrics when the manifest gives labels and masks.

Study level: AUROC and AP of the study scores against the labels (``medzsad.eval.metrics``, equal
to scikit-learn's). Voxel level, over every voxel of every completed study with a mask: AUROC of
the heat maps, AUPRO with 3D lesions as regions (the reference definition, FPR limit 0.3, 200
thresholds) and the pooled Dice of the written masks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
from scipy.integrate import trapezoid
from skimage import measure

from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.ledger import LedgerRow, StudyState
from medzsad.eval.metrics import aupro_thresholds, auroc, average_precision
from medzsad.report.atomic import write_json

__all__ = ["aupro_volumes", "cohort_metrics", "write_metrics"]

log = logging.getLogger(__name__)


def aupro_volumes(
    masks: list[np.ndarray], maps: list[np.ndarray], max_step: int = 200, fpr_limit: float = 0.3
) -> float:
    """AUPRO over volumes of any shapes, each connected ground-truth region (full connectivity) one region.

    Same algorithm and threshold grid as :func:`medzsad.eval.metrics.aupro` (which it equals for
    lists of 2D images), generalised to N-d regions and differently shaped inputs.

    Args:
        masks: Ground truth per study, bool-like, any shape.
        maps: Heat maps, same shapes as ``masks``.
        max_step: Threshold steps between the global min and max.
        fpr_limit: FPR limit of the integrated part of the curve.

    Returns:
        AUPRO in [0, 1], or ``nan`` when undefined (no region, no normal voxel, constant maps).
    """
    m = [
        np.asarray(x) > 0.5 if np.asarray(x).dtype.kind == "f" else np.asarray(x).astype(bool) for x in masks
    ]
    a = [np.asarray(x, dtype=np.float64) for x in maps]
    if not m or not any(x.any() for x in m) or all(x.all() for x in m):
        return float("nan")
    lo, hi = min(float(x.min()) for x in a), max(float(x.max()) for x in a)
    if lo == hi:
        return float("nan")
    ths = aupro_thresholds(np.array([lo, hi]), max_step)
    n_th = ths.size
    neg_hist = np.zeros(n_th + 1, dtype=np.int64)
    region_hist, region_area = [], []
    for mask, amap in zip(m, a):
        idx = np.searchsorted(ths, amap, side="left")
        neg_hist += np.bincount(idx[~mask], minlength=n_th + 1)
        labels = measure.label(mask)
        n = int(labels.max())
        if n == 0:
            continue
        on = labels > 0
        flat = (labels[on].astype(np.int64) - 1) * (n_th + 1) + idx[on]
        region_hist.append(np.bincount(flat, minlength=n * (n_th + 1)).reshape(n, n_th + 1))
        region_area.append(np.bincount(labels[on], minlength=n + 1)[1:])
    hist, area = np.concatenate(region_hist), np.concatenate(region_area)
    above = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    pros = (above / area[:, None]).mean(axis=0)
    fprs = np.cumsum(neg_hist[::-1])[::-1][1:] / int(sum(int((~x).sum()) for x in m))
    keep = fprs < fpr_limit
    f, p = fprs[keep], pros[keep]
    if f.size < 2 or f.max() == f.min():
        return float("nan")
    f = (f - f.min()) / (f.max() - f.min())
    return float(trapezoid(p[::-1], f[::-1]))


def _load(path: Path) -> np.ndarray:
    return np.asanyarray(cast(nib.Nifti1Image, nib.load(str(path))).dataobj)


def _voxel_metrics(pairs: list[tuple[Path, Path, Path]]) -> dict[str, Any]:
    gts, heats, preds = [], [], []
    for gt_path, heat_path, mask_path in pairs:
        gt = _load(gt_path) > 0
        heat = _load(heat_path).astype(np.float32)
        if gt.shape != heat.shape:
            log.warning(
                "ground-truth mask %s has shape %s, heat map %s; left out", gt_path.name, gt.shape, heat.shape
            )
            continue
        gts.append(gt)
        heats.append(heat)
        preds.append(_load(mask_path) > 0 if mask_path.exists() else heat >= 0.5)
    if not gts:
        return {}
    y = np.concatenate([g.ravel() for g in gts])
    s = np.concatenate([h.ravel() for h in heats])
    p = np.concatenate([q.ravel() for q in preds])
    inter, total = float(np.logical_and(y, p).sum()), float(y.sum() + p.sum())
    return {
        "voxel_auroc": auroc(y, s),
        "aupro": aupro_volumes(gts, heats),
        "dice": 2.0 * inter / total if total > 0 else float("nan"),
        "n_mask_studies": len(gts),
        "n_voxels": int(y.size),
    }


def cohort_metrics(
    studies: list[StudyInput], rows: dict[str, LedgerRow], studies_dir: Path
) -> dict[str, Any] | None:
    """Metrics of the completed studies, or ``None`` when no study has a label or mask."""
    done = [s for s in studies if (r := rows.get(s.study_id)) is not None and r.state is StudyState.DONE]
    labelled = [s for s in done if s.label is not None]
    masked = [s for s in done if s.mask]
    if not labelled and not masked:
        return None
    out: dict[str, Any] = {"n_studies": len(done)}
    if labelled:
        y = np.array([s.label for s in labelled])
        scores = np.array([float(rows[s.study_id].outputs["score"]) for s in labelled])
        out.update(
            study_auroc=auroc(y, scores),
            study_ap=average_precision(y, scores),
            n_labelled=len(labelled),
            n_positive=int(y.sum()),
        )
    pairs = []
    for s in masked:
        folder = studies_dir / rows[s.study_id].safe_id
        if (folder / "heatmap.nii.gz").exists() and s.mask:
            pairs.append((Path(s.mask), folder / "heatmap.nii.gz", folder / "mask.nii.gz"))
    out.update(_voxel_metrics(pairs))
    return out


def write_metrics(out_dir: Path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics.json`` atomically (``nan`` as ``null``)."""
    return write_json(out_dir / "metrics.json", metrics)
