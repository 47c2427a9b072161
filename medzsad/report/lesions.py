"""The lesion table writer: one row per lesion found by :mod:`medzsad.analysis.lesions`."""

from __future__ import annotations

import pandas as pd

from medzsad.analysis.intensity import intensity_unit, lesion_intensities
from medzsad.analysis.lesions import LesionResult
from medzsad.io.volume import Volume

__all__ = ["LESION_COLUMNS", "INTENSITY_COLUMNS", "DECIMALS", "lesions_table"]

LESION_COLUMNS = [
    "component", "voxels", "volume_ml",
    "centroid_r_mm", "centroid_a_mm", "centroid_s_mm",
    "centroid_l_lps_mm", "centroid_p_lps_mm", "centroid_s_lps_mm",
    "bbox_i_min", "bbox_j_min", "bbox_k_min", "bbox_i_max", "bbox_j_max", "bbox_k_max",
    "max_score", "mean_score",
]  # fmt: skip


#: Scanner values inside each lesion (with ``volume``): HU for CT, the unit is in ``intensity_unit``.
INTENSITY_COLUMNS = [
    "intensity_mean", "intensity_std", "intensity_min", "intensity_max", "intensity_median", "intensity_unit",
]  # fmt: skip

#: Decimals written per column: 0.1 uL volumes, 0.01 mm positions, 1e-4 heat, 0.01 scanner units.
DECIMALS = {
    "volume_ml": 4,
    **{c: 2 for c in LESION_COLUMNS if c.endswith("_mm")},
    "max_score": 4,
    "mean_score": 4,
    **{c: 2 for c in INTENSITY_COLUMNS[:-1]},
}


def lesions_table(result: LesionResult, volume: Volume | None = None) -> pd.DataFrame:
    """One row per lesion, values rounded to :data:`DECIMALS`; empty table with the columns if none.

    Args:
        result: The lesions.
        volume: The scan in the grid of ``result.labels``: adds :data:`INTENSITY_COLUMNS`.
    """
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
    table = pd.DataFrame(rows, columns=LESION_COLUMNS)
    if volume is not None:
        stats = lesion_intensities(result.labels, volume.data, len(result.lesions))
        for column, attr in zip(INTENSITY_COLUMNS[:-1], ("mean", "std", "min", "max", "median")):
            table[column] = pd.Series([getattr(x, attr) for x in stats], dtype="float64")
        table["intensity_unit"] = intensity_unit(volume.modality)
    return table.round({k: v for k, v in DECIMALS.items() if k in table.columns})
