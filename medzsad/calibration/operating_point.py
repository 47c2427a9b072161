"""A review cohort's operating points: calibrated thresholds and flags from a profile, and their text.

:func:`check_cohort` refuses a profile that does not fit the cohort (model or pipeline hash,
minimum lesion volume, too few normals for ``alpha``) before anything is scored.
:func:`study_threshold` gives one study its mask threshold; :func:`flag_columns` adds
``p_value``/``flagged`` to the studies table. :func:`describe` is the one sentence that states an
operating point (provenance, report page, overlay title).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medzsad.calibration.conformal import benjamini_hochberg, conformal_p_values, conformal_quantile
from medzsad.calibration.hashes import (
    differences,
    model_hash,
    model_settings,
    pipeline_hash,
    pipeline_settings,
)
from medzsad.calibration.profile_io import PROFILE_FILE, Profile, Stratum, load_profile
from medzsad.calibration.strata import stratum_key
from medzsad.config import CohortConfig, FlagRule, ThresholdRule
from medzsad.errors import ConfigError

__all__ = [
    "StudyThreshold",
    "describe",
    "describe_flag",
    "profile_of",
    "check_cohort",
    "study_threshold",
    "study_flag_check",
    "study_p_value",
    "flag_columns",
    "run_operating_point",
    "refuse_uncalibrated",
    "site_statistics",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyThreshold:
    """The mask rule of one study and the sentence stating it.

    Attributes:
        rule: A ``fixed`` or ``percentile`` rule (``calibrated`` resolved to ``fixed`` at tau).
        text: e.g. ``"tau 0.6132 (profile site, n=57 normals, alpha 0.05)"``.
        tau: The calibrated threshold, ``None`` for uncalibrated rules.
    """

    rule: ThresholdRule
    text: str
    tau: float | None = None


def describe(
    rule: ThresholdRule, tau: float | None = None, profile: str | None = None, n: int | None = None
) -> str:
    """The operating point of a mask rule in one line.

    ``calibrated``: ``"tau 0.6132 (profile <name>, n=57 normals, alpha 0.05)"``; ``fixed`` and
    ``percentile`` say ``"uncalibrated threshold"``.
    """
    if rule.method == "calibrated":
        t = "?" if tau is None else f"{tau:.4f}"
        count = "?" if n is None else str(n)
        return f"tau {t} (profile {profile or rule.profile}, n={count} normals, alpha {rule.alpha:g})"
    if rule.method == "percentile":
        return f"heat >= the study's {rule.value:g}th percentile (uncalibrated threshold)"
    return f"heat >= {rule.value:g} (uncalibrated threshold)"


def describe_flag(flag: FlagRule, profile: str, n: int | None = None) -> str:
    """The flag rule in one line, e.g. ``"flag p <= 0.05, false-positive rate (profile p, n=57 normals)"``."""
    what = "false-positive rate" if flag.control == "fpr" else "Benjamini-Hochberg false-discovery rate"
    count = f", n={n} normals" if n is not None else ""
    return f"flag at alpha {flag.alpha:g}, {what} (profile {profile}{count})"


@functools.lru_cache(maxsize=16)
def _cached(path: str, mtime_ns: int) -> Profile:
    return load_profile(path)


def profile_of(cfg: CohortConfig, folder: str) -> Profile:
    """The profile a cohort names (relative to the cohort file), read once per file version.

    Raises:
        ConfigError: Missing, malformed or newer-schema profile.
    """
    p = cfg.resolve(folder)
    f = p / PROFILE_FILE if p.suffix != ".json" else p
    try:
        mtime = f.stat().st_mtime_ns
    except OSError:
        mtime = -1
    return _cached(str(p), mtime)


def _check_profile(cfg: CohortConfig, profile: Profile, alpha: float, where: str) -> None:
    fix = (
        "build a profile with this cohort's model and pipeline sections (medzsad profile) "
        f"or use the settings the {where} profile was built with"
    )
    m = cfg.model
    if m.references and m.site_normalised and profile.references is not None:
        site_statistics(cfg, profile, tuple(profile.references.get("axes") or ("axial",)), f"{where} ")
    if profile.model_hash != model_hash(cfg):
        raise ConfigError(
            f"{cfg.source_file}: {where} profile {profile.path}: model hash {profile.model_hash[:12]} "
            f"!= this cohort's {model_hash(cfg)[:12]} (a profile is valid only for the model it was "
            f"built with{_what_differs(profile, 'model', model_settings(cfg))}); {fix}"
        )
    if profile.pipeline_hash != pipeline_hash(cfg):
        raise ConfigError(
            f"{cfg.source_file}: {where} profile {profile.path}: pipeline hash {profile.pipeline_hash[:12]} "
            f"!= this cohort's {pipeline_hash(cfg)[:12]} (pipeline section, presets and study_score must "
            f"match the normals'{_what_differs(profile, 'pipeline', pipeline_settings(cfg), '')}); {fix}"
        )
    for key, stratum in sorted(profile.strata.items()):
        conformal_quantile(stratum.scores, alpha, what=f"{where} profile {profile.path}: stratum {key!r}")


def _what_differs(profile: Profile, part: str, ours: dict[str, Any], prefix: str | None = None) -> str:
    """``; it differs in model.references (profile true, this cohort false)``, from the kept settings.

    Empty for a profile that kept no settings (built before they were kept).
    """
    kept = (profile.extra.get("settings") or {}).get(part)
    if not isinstance(kept, dict):
        return ""
    diff = differences(kept, ours, part if prefix is None else prefix)
    shown = [f"{key} (profile {json.dumps(a)}, this cohort {json.dumps(b)})" for key, a, b in diff[:4]]
    more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
    return f"; it differs in {', '.join(shown)}{more}" if shown else ""


def check_cohort(cfg: CohortConfig) -> None:
    """Refuse profiles that do not fit a review cohort, before anything is scored.

    Raises:
        ConfigError: Model or pipeline hash differs, ``min_lesion_ml`` differs from the profile's,
            a stratum has too few normals for ``alpha``, or the profile cannot be read.
    """
    rule = cfg.output.threshold
    if rule.method == "calibrated" and rule.profile is not None:
        prof = profile_of(cfg, rule.profile)
        _check_profile(cfg, prof, rule.alpha, "output.threshold")
        if not np.isclose(prof.min_lesion_ml, rule.min_lesion_ml, rtol=0, atol=1e-12):
            raise ConfigError(
                f"{cfg.source_file}: output.threshold.min_lesion_ml is {rule.min_lesion_ml:g} but profile "
                f"{prof.path} was built with {prof.min_lesion_ml:g}; set min_lesion_ml: "
                f"{prof.min_lesion_ml:g} or rebuild the profile with that output.threshold.min_lesion_ml"
            )
        _warn_ties(prof, rule.alpha)
    if cfg.output.flag is not None:
        _check_profile(cfg, profile_of(cfg, cfg.output.flag.profile), cfg.output.flag.alpha, "output.flag")


def site_statistics(
    cfg: CohortConfig, profile: Profile, axes: tuple[str, ...], where: str = ""
) -> dict[str, Any]:
    """The profile's statistics of maps in site units for each of ``axes`` (as stored).

    The one check of a cohort that asks for maps in site units (``model.site_normalised``): the
    review's own references profile when its scorer is built, and a calibration profile that
    holds references before anything is scored.

    Args:
        cfg: The cohort (named in the message).
        profile: The profile.
        axes: The axes whose statistics are needed.
        where: Which profile, as the message names it (``"output.threshold "`` or empty).

    Raises:
        ConfigError: The profile has none, or not for every axis (one line).
    """
    data = profile.normalisation or {}
    missing = [axis for axis in axes if axis not in data]
    if missing:
        raise ConfigError(
            f"{cfg.source_file}: {where}profile {profile.path} has no statistics for maps in site units "
            f"for axes {missing} (model.site_normalised: true); rebuild it with this medzsad and "
            "model.site_normalised: true, or set model.site_normalised: false"
        )
    return {axis: data[axis] for axis in axes}


def _warn_ties(prof: Profile, alpha: float) -> None:
    """The any-lesion bound assumes no ties at tau (a saturated heat map would tie): say so."""
    for key, s in sorted(prof.strata.items()):
        stats = s.lesion_statistics
        tau = conformal_quantile(stats, alpha, what=f"stratum {key!r}")
        tied = int(np.sum(stats == tau))
        if tied > 1:
            log.warning(
                "profile %s, stratum %s: %d calibration lesion statistics equal tau %.4f; the any-lesion "
                "bound assumes no ties (see docs/calibration.md)",
                prof.name,
                key,
                tied,
                tau,
            )


def _stratum(profile: Profile, values: Mapping[str, Any]) -> Stratum:
    return profile.stratum(stratum_key(values, profile.strata_fields))


def study_threshold(cfg: CohortConfig, values: Mapping[str, Any]) -> StudyThreshold:
    """The mask rule of a study with stratum ``values`` (tau from the profile when calibrated).

    Raises:
        ConfigError: The study's stratum is not in the profile, or it has too few normals.
    """
    rule = cfg.output.threshold
    if rule.method != "calibrated" or rule.profile is None:
        return StudyThreshold(rule, describe(rule))
    prof = profile_of(cfg, rule.profile)
    stratum = _stratum(prof, values)
    tau = conformal_quantile(
        stratum.lesion_statistics, rule.alpha, what=f"profile {prof.path}: stratum {stratum.key!r}"
    )
    fixed = ThresholdRule(method="fixed", value=tau, min_lesion_ml=rule.min_lesion_ml)
    return StudyThreshold(fixed, describe(rule, tau, prof.name, stratum.n), tau)


def study_flag_check(cfg: CohortConfig, values: Mapping[str, Any]) -> str:
    """The flag rule's sentence for a study; raises when its stratum is not in the flag profile.

    Raises:
        ConfigError: The study's stratum is not in the profile.
    """
    if cfg.output.flag is None:
        return ""
    prof = profile_of(cfg, cfg.output.flag.profile)
    return describe_flag(cfg.output.flag, prof.name, _stratum(prof, values).n)


def _p_value(prof: Profile, outputs: Mapping[str, Any]) -> float:
    score = outputs.get("score")
    if score is None:
        return float("nan")
    # a row written before strata were recorded still fits an unstratified profile ("all")
    values = outputs.get("stratum")
    key = stratum_key(values if isinstance(values, Mapping) else {}, prof.strata_fields)
    if key not in prof.strata:
        log.warning("a study's stratum %r is not in profile %s: no p-value", key, prof.name)
        return float("nan")
    return float(conformal_p_values(prof.strata[key].scores, np.array([float(score)]))[0])


def study_p_value(
    cfg: CohortConfig, score: float, stratum: Mapping[str, str]
) -> tuple[float | None, bool | None]:
    """One study's conformal p-value under ``output.flag`` and, with ``fpr`` control, its flag.

    The same p-value :func:`flag_columns` puts in the studies table, for objects written per study
    (the DICOM SR). With ``fdr`` control the flag depends on every study of the run
    (Benjamini–Hochberg), so it is ``None`` here. ``(None, None)`` without ``output.flag``.
    """
    flag = cfg.output.flag
    if flag is None:
        return None, None
    p = _p_value(profile_of(cfg, flag.profile), {"score": score, "stratum": dict(stratum)})
    if np.isnan(p):
        return None, None
    return p, (bool(p <= flag.alpha) if flag.control == "fpr" else None)


def flag_columns(table: pd.DataFrame, rows: Mapping[str, Any], cfg: CohortConfig) -> pd.DataFrame:
    """``table`` (one row per study, column ``study_id``) with ``p_value`` and ``flagged`` added.

    ``p_value = (1 + #{calibration scores >= score}) / (n + 1)`` in the study's stratum;
    ``flagged`` is ``p_value <= alpha`` (``fpr``) or the Benjamini–Hochberg rejection over the
    table's studies (``fdr``). Studies without a score get no p-value and are not flagged.

    Args:
        table: The studies table.
        rows: Study id -> ledger row (``.state``, ``.outputs`` with ``score`` and ``stratum``).
        cfg: The cohort (its ``output.flag``).
    """
    flag = cfg.output.flag
    if flag is None:
        return table
    prof = profile_of(cfg, flag.profile)
    p = np.full(len(table), np.nan)
    for i, sid in enumerate(table["study_id"]):
        r = rows.get(sid)
        if r is not None and getattr(r.state, "value", r.state) == "done":
            p[i] = _p_value(prof, r.outputs)
    flagged = (
        benjamini_hochberg(p, flag.alpha) if flag.control == "fdr" else (~np.isnan(p)) & (p <= flag.alpha)
    )
    out = table.copy()
    out["p_value"] = p
    out["flagged"] = pd.array(
        [bool(f) if not np.isnan(v) else pd.NA for f, v in zip(flagged, p, strict=True)], dtype="boolean"
    )
    return out


def run_operating_point(cfg: CohortConfig) -> dict[str, str]:
    """The run-level operating point text (report page, metrics.json): ``{"threshold": ..., "flag": ...}``.

    A calibrated threshold has one tau per stratum; the run-level text lists each.
    """
    rule = cfg.output.threshold
    out: dict[str, str] = {}
    if rule.method == "calibrated" and rule.profile is not None:
        prof = profile_of(cfg, rule.profile)
        parts = []
        for key, s in sorted(prof.strata.items()):
            tau = conformal_quantile(s.lesion_statistics, rule.alpha, what=f"stratum {key!r}")
            text = describe(rule, tau, prof.name, s.n)
            parts.append(text if key == "all" else f"{key}: {text}")
        out["threshold"] = "; ".join(parts)
    else:
        out["threshold"] = describe(rule)
    if cfg.output.flag is not None:
        prof = profile_of(cfg, cfg.output.flag.profile)
        out["flag"] = describe_flag(cfg.output.flag, prof.name, prof.n_studies)
    return out


def refuse_uncalibrated(cfg: CohortConfig, failed_rows: list[Any], errors_csv: Path) -> None:
    """Raise when studies failed because the profile cannot calibrate them (unknown stratum).

    Called at the end of a run, after the other studies are done and the tables written, so the
    run's result is on disk and the command still ends with a configuration error (exit 2).

    Args:
        cfg: The cohort.
        failed_rows: Ledger rows of the studies that failed in this run.
        errors_csv: The errors table (named in the message).

    Raises:
        ConfigError: At least one study failed at the ``calibrate`` stage with a ConfigError.
    """
    bad = [
        r
        for r in failed_rows
        if r.outputs.get("stage") == "calibrate" and r.outputs.get("error_type") == "ConfigError"
    ]
    if bad:
        raise ConfigError(
            f"{cfg.source_file}: {len(bad)} studies could not be calibrated and were refused (the other "
            f"studies are done; see {errors_csv}): {bad[0].error}"
        )
