"""lesions.csv: intensity statistics per lesion in scanner units (HU for CT), rounded values."""

from __future__ import annotations

import numpy as np
import pytest

from medzsad.analysis.intensity import intensity_unit, lesion_intensities
from medzsad.analysis.lesions import find_lesions
from medzsad.io.volume import SourceInfo, Volume
from medzsad.report.lesions import INTENSITY_COLUMNS, lesions_table


def test_intensities_per_label_match_numpy() -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(40.0, 10.0, (10, 9, 8)).astype(np.float32)
    labels = np.zeros(data.shape, np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    labels[6:9, 5:8, 4:7] = 2
    stats = lesion_intensities(labels, data, 2)
    for s in stats:
        vals = data[labels == s.label].astype(np.float64)
        assert (s.mean, s.std, s.min, s.max, s.median) == pytest.approx(
            (vals.mean(), vals.std(), vals.min(), vals.max(), np.median(vals))
        )
    assert lesion_intensities(labels, data, 0) == []
    with pytest.raises(ValueError, match="shape"):
        lesion_intensities(labels[:-1], data, 2)


def test_lesion_table_has_hu_statistics_and_sensible_rounding() -> None:
    affine = np.diag([0.7, 0.7, 1.3, 1.0])
    data = np.full((12, 12, 6), 30.0, np.float32)
    data[2:5, 2:5, 1:4] = 1361.3599999999997  # bone-like lesion
    data[3, 3, 2] = 1400.123456
    heat = np.zeros(data.shape, np.float32)
    heat[2:5, 2:5, 1:4] = 0.8123456789
    result = find_lesions(heat, affine, 0.5, 0.0)
    volume = Volume(data=data, affine_ras=affine, modality="CT", source=SourceInfo(("ct.nii.gz",), "nifti"))
    table = lesions_table(result, volume)
    assert list(table.columns[-len(INTENSITY_COLUMNS) :]) == INTENSITY_COLUMNS
    row = table.iloc[0]
    assert row["intensity_unit"] == "HU"
    assert row["intensity_max"] == 1400.12 and row["intensity_min"] == 1361.36
    assert row["max_score"] == 0.8123
    text = table.to_csv(index=False)
    assert "1361.3599999999997" not in text and "1361.36" in text
    for value in table.select_dtypes("float").to_numpy().ravel():
        assert len(repr(float(value)).split(".")[-1]) <= 4
    assert intensity_unit("MR") == "scanner units"
