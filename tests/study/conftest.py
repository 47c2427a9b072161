"""Shared fixtures of the study tests: a real anatomy crop and a tiny random scorer."""

from __future__ import annotations

import numpy as np
import pytest

from medzsad.datasets.demo_data import mni_template
from medzsad.model.inference import Detector
from medzsad.model.tiny import tiny_anomalyclip
from medzsad.study.scorer import ModelScorer, ScorerInfo


@pytest.fixture(scope="module")
def anatomy() -> tuple[np.ndarray, np.ndarray]:
    """A 16 x 20 x 12 crop of the MNI152 template at 4 mm (brain and skull), its RAS affine."""
    mni, aff = mni_template(4)
    lo = np.array([14, 16, 16])
    crop = np.ascontiguousarray(mni[14:30, 16:36, 16:28])
    shifted = aff.copy()
    shifted[:3, 3] += aff[:3, :3] @ lo
    return crop, shifted


@pytest.fixture(scope="module")
def scorer() -> ModelScorer:
    """A tiny random AnomalyCLIP at 56 px tapping 2 layers."""
    det = Detector(tiny_anomalyclip(56, seed=0, feature_layers=(2, 4), dpam_layers=2))
    return ModelScorer(det, 2, ScorerInfo("tiny", "test"))
