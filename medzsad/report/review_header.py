"""What the cohort review page says about the run: the model built, the operating point, counts, metrics.

The page states what was built and decided, never re-derives it: the model line is the built
model's description (recorded in the run's ledger, :class:`medzsad.study.scorer.ScorerInfo`) and
the operating point is the run's (:func:`medzsad.calibration.operating_point.run_operating_point`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CohortHeader", "cohort_header"]


@dataclass(frozen=True)
class CohortHeader:
    """The header of ``report.html``.

    Attributes:
        name: Cohort name.
        model: The built model's description (backbone, input size, layers, DPAM span).
        weights: Weight names (CLIP, prompts).
        threshold: How heat became the mask, and where the number comes from.
        flag: The flag rule (p-values from a site profile), ``""`` without one.
        created: When the page was written (UTC, ISO 8601 to the minute).
        smoke: Random weights: the page carries a SMOKE RUN banner.
        metrics: ``metrics.json`` values (study AUROC/AP, voxel AUROC, AUPRO, Dice) when labelled.
    """

    name: str
    model: str = ""
    weights: tuple[str, ...] = ()
    threshold: str = ""
    flag: str = ""
    created: str = ""
    smoke: bool = False
    metrics: Mapping[str, Any] = field(default_factory=dict)


def cohort_header(
    name: str,
    *,
    smoke: bool,
    model: Mapping[str, Any] | None,
    operating_point: Mapping[str, str],
    metrics: Mapping[str, Any] | None = None,
) -> CohortHeader:
    """The review page header of a cohort run.

    Args:
        name: Cohort name.
        smoke: Random weights were used.
        model: The built model (:meth:`medzsad.study.scorer.ScorerInfo.to_json`), ``None`` when
            no model was built for the studies on the page.
        operating_point: ``{"threshold": ..., "flag": ...}`` of the run.
        metrics: The run's metrics, when labelled.
    """
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    m = model or {}
    return CohortHeader(
        name=name,
        model=str(m.get("description", "")),
        weights=tuple(str(w) for w in m.get("weight_names", ())),
        threshold=operating_point.get("threshold", ""),
        flag=operating_point.get("flag", ""),
        created=now,
        smoke=smoke,
        metrics=dict(metrics or {}),
    )
