"""What the cohort review page says about the run: model, weights, operating point, counts, metrics.

:func:`operating_point` is the one place that describes how heat became a mask, with its provenance.
Today every threshold is a fixed rule from the cohort file or preset ("uncalibrated threshold"); a
calibrated operating point (site profile, ``medzsad profile``) is described here too once the
output configuration carries one, so the page, and anything else that shows it, stays in step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medzsad.config import CohortConfig, OutputConfig

__all__ = ["OperatingPoint", "CohortHeader", "operating_point", "cohort_header"]


@dataclass(frozen=True)
class OperatingPoint:
    """How the heat map becomes a mask.

    Attributes:
        rule: The rule, e.g. ``heat >= 0.5, lesions >= 0.1 mL``.
        provenance: Where the number comes from, e.g. ``uncalibrated threshold (cohort file)``.
        calibrated: Whether the threshold was calibrated on data (a site profile).
    """

    rule: str
    provenance: str
    calibrated: bool = False


@dataclass(frozen=True)
class CohortHeader:
    """The header of ``report.html``.

    Attributes:
        name: Cohort name.
        model: Model description (architecture, input size).
        weights: Weight names (CLIP, prompts).
        operating_point: See :func:`operating_point`.
        created: When the page was written (UTC, ISO 8601 to the minute).
        smoke: Random weights: the page carries a SMOKE RUN banner.
        metrics: ``metrics.json`` values (study AUROC/AP, voxel AUROC, AUPRO, Dice) when labelled.
    """

    name: str
    model: str = ""
    weights: tuple[str, ...] = ()
    operating_point: OperatingPoint | None = None
    created: str = ""
    smoke: bool = False
    metrics: Mapping[str, Any] = field(default_factory=dict)


def operating_point(output: OutputConfig) -> OperatingPoint:
    """Describe ``output.threshold`` (method, value, minimum lesion volume) and where it comes from."""
    t = output.threshold
    size = f", lesions >= {t.min_lesion_ml:g} mL"
    if t.method == "calibrated":
        return OperatingPoint(
            f"heat >= tau{size}", f"calibrated on profile {t.profile} at alpha {t.alpha:g}", calibrated=True
        )
    if t.method == "percentile":
        return OperatingPoint(
            f"heat >= the study's own {t.value:g}th percentile{size}",
            "uncalibrated threshold (relative to each study; not comparable across studies)",
        )
    return OperatingPoint(
        f"heat >= {t.value:g}{size}", "uncalibrated threshold (fixed value from the cohort file)"
    )


def _model_text(cfg: CohortConfig) -> tuple[str, tuple[str, ...]]:
    m = cfg.model
    size = f"{m.image_size} px" if m.image_size else "the architecture's input size"
    if m.tiny:
        return f"tiny random AnomalyCLIP (test model), {size}", ("random",)
    layers = ", ".join(str(x) for x in m.feature_layers or ())
    text = f"AnomalyCLIP on {m.backbone}, {size}, feature layers {layers}, DPAM on last {m.dpam_layers}"
    return text, (str(m.clip_weights), str(m.prompt_weights))


def _calibrated(cfg: CohortConfig) -> OperatingPoint | None:
    """A calibrated threshold with its tau, profile, n and alpha per stratum (reads the profile)."""
    t = cfg.output.threshold
    if t.method != "calibrated":
        return None
    from medzsad.calibration.operating_point import run_operating_point

    return OperatingPoint(
        f"heat >= tau, lesions >= {t.min_lesion_ml:g} mL", run_operating_point(cfg)["threshold"], True
    )


def cohort_header(cfg: CohortConfig, metrics: Mapping[str, Any] | None = None) -> CohortHeader:
    """The review page header of a cohort run."""
    model, weights = _model_text(cfg)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return CohortHeader(
        name=cfg.name,
        model=model,
        weights=weights,
        operating_point=_calibrated(cfg) or operating_point(cfg.output),
        created=now,
        smoke=cfg.model.is_smoke,
        metrics=dict(metrics or {}),
    )
