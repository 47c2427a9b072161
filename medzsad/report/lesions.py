"""The lesion table writer: one row per lesion found by :mod:`medzsad.analysis.lesions`."""

from __future__ import annotations

import pandas as pd

from medzsad.analysis.lesions import LesionResult

__all__ = ["LESION_COLUMNS", "lesions_table"]

LESION_COLUMNS = [
    "component", "voxels", "volume_ml",
    "centroid_r_mm", "centroid_a_mm", "centroid_s_mm",
    "centroid_l_lps_mm", "centroid_p_lps_mm", "centroid_s_lps_mm",
    "bbox_i_min", "bbox_j_min", "bbox_k_min", "bbox_i_max", "bbox_j_max", "bbox_k_max",
    "max_score", "mean_score",
]  # fmt: skip


def lesions_table(result: LesionResult) -> pd.DataFrame:
    """One row per lesion (columns :data:`LESION_COLUMNS`); empty table with the columns if none."""
    rows = [
        [
            les.label,
            les.voxels,
            les.volume_ml,
            *les.centroid_ras_mm,
            *les.centroid_lps_mm,
            *les.bbox_min_ijk,
            *les.bbox_max_ijk,
            les.max_score,
            les.mean_score,
        ]  # fmt: skip
        for les in result.lesions
    ]
    return pd.DataFrame(rows, columns=LESION_COLUMNS)
