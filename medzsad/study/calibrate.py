"""The calibration step of one study: its stratum, mask rule, p-value and (for normals) lesion statistic.

Called between assembling the heat map and post-processing, so ``medzsad run`` and
``medzsad profile`` share one code path. The maths and the profile live in
:mod:`medzsad.calibration`; this step only gathers what it needs from the study.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medzsad.calibration.lesion_stat import lesion_statistic_affine
from medzsad.calibration.operating_point import (
    StudyThreshold,
    study_flag_check,
    study_p_value,
    study_threshold,
)
from medzsad.calibration.strata import stratum_values
from medzsad.config import CohortConfig
from medzsad.study.types import PreparedStudy

__all__ = ["StudyCalibration", "calibrate_study"]


@dataclass(frozen=True)
class StudyCalibration:
    """What calibration decided for one study.

    Attributes:
        stratum: The study's stratum fields (modality, manufacturer, model_name, preset).
        threshold: Its mask rule and the sentence stating it.
        flag_rule: The flag rule's sentence (``""`` without ``output.flag``).
        p_value: Conformal p-value of the study score under ``output.flag`` (``None`` without it).
        flagged: ``p_value <= alpha`` with ``fpr`` control (``None`` otherwise: FDR flags need the
            whole run).
        lesion_statistic: The lesion statistic (only when the cohort has a ``profile`` section,
            i.e. its studies are normals being profiled).
    """

    stratum: dict[str, str]
    threshold: StudyThreshold
    flag_rule: str = ""
    p_value: float | None = None
    flagged: bool | None = None
    lesion_statistic: float | None = None

    def summary(self) -> dict[str, Any]:
        """Fields for the ledger summary and provenance (numbers and scanner names only)."""
        out: dict[str, Any] = {"stratum": dict(self.stratum), "operating_point": self.threshold.text}
        if self.threshold.tau is not None:
            out["tau"] = self.threshold.tau
        if self.flag_rule:
            out["flag_rule"] = self.flag_rule
        if self.p_value is not None:
            out.update(p_value=self.p_value, flagged=self.flagged)
        if self.lesion_statistic is not None:
            out["lesion_statistic"] = self.lesion_statistic
        return out


def calibrate_study(
    cfg: CohortConfig, prepared: PreparedStudy, heat: np.ndarray, score: float
) -> StudyCalibration:
    """Stratum, mask rule, p-value and lesion statistic of one scored study.

    Args:
        cfg: The cohort.
        prepared: The loaded study (volume with its scanner tags, chosen preset).
        heat: ``(I, J, K)`` float32 heat map in [0, 1] in the source grid.
        score: The study score.

    Raises:
        ConfigError: The study's stratum is not in the cohort's profile (threshold or flag), or it
            has too few normals for alpha.
    """
    v = prepared.volume
    preset = prepared.series.preset if prepared.series is not None else ""
    # a NIfTI states no modality: the one its preset was chosen for, as studies.csv says
    modality = v.modality or (prepared.series.modality if prepared.series is not None else "")
    values = stratum_values(modality, preset, v.source.manufacturer, v.source.model_name)
    threshold = study_threshold(cfg, values)
    flag_rule = study_flag_check(cfg, values)
    p_value, flagged = study_p_value(cfg, score, values)
    stat = None
    if cfg.profile is not None:
        stat = lesion_statistic_affine(heat, v.affine_ras, cfg.output.threshold.min_lesion_ml)
    return StudyCalibration(values, threshold, flag_rule, p_value, flagged, stat)
