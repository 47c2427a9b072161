"""metrics.json: study- and voxel-level metrics when the manifest gives labels and masks.

Study level: AUROC and AP of the study scores against the labels (``medzsad.analysis.metrics``, equal
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

from medzsad.analysis.metrics import aupro_regions, auroc, average_precision
from medzsad.cohort.ledger import LedgerRow, StudyState
from medzsad.fileio import write_json
from medzsad.study.types import StudyInput

__all__ = ["cohort_metrics", "write_metrics"]

log = logging.getLogger(__name__)


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
        "aupro": aupro_regions(gts, heats),
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
