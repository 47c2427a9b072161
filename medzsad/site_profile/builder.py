"""``medzsad profile NORMALS.yaml``: score a cohort of normal studies and write its profile.

The normals are scored by :func:`medzsad.cohort.launch.run_cohort`, the same code path (and
ledger, so the build resumes) as ``medzsad run``: a profile is an application built on runs. The
calibration step of every study records its stratum and lesion statistic in the ledger, and the
profile is assembled from there.

Steps: score -> collect records -> choose the calibration studies -> group by stratum -> check
counts -> write ``profile.json`` and ``calibration.png``. Choosing the calibration studies is its own
step so that a later step can hold some normals out (e.g. few-shot references, disjoint from the
calibration set).
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from medzsad import __version__
from medzsad.calibration.conformal import min_normals
from medzsad.calibration.hashes import model_hash, model_settings, pipeline_hash, pipeline_settings
from medzsad.calibration.lesion_stat import lesion_statistic_affine
from medzsad.calibration.plot import write_calibration_plot
from medzsad.calibration.profile_io import PROFILE_FILE, CalibrationStudy, Profile, Stratum, write_profile
from medzsad.calibration.strata import stratum_key
from medzsad.cohort.inputs import collect_studies
from medzsad.cohort.launch import run_cohort
from medzsad.cohort.ledger import LEDGER_FILE, Ledger, StudyState
from medzsad.cohort.options import OnStudy, RunOptions, RunSummary, apply_options
from medzsad.cohort.preflight import check_model, check_output_folder, check_output_outside_inputs
from medzsad.config import CohortConfig, ProfileConfig, load_cohort
from medzsad.errors import ConfigError, OutputError
from medzsad.references.sampling import check_disjoint
from medzsad.site_profile.folder import PLOT_FILE, check_profile_folder, staged_folder
from medzsad.site_profile.references import ProfileReferences, prepare_profile_references, with_reference_mode
from medzsad.study.loading import StudyLoader
from medzsad.study.scorer import SliceScorer
from medzsad.study.types import StudyInput

__all__ = ["ProfileResult", "CalibrationRecord", "build_profile"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationRecord:
    """One scored normal: safe id, stratum fields, study score, lesion statistic."""

    safe_id: str
    stratum: dict[str, str]
    score: float
    lesion_statistic: float


@dataclass(frozen=True)
class ProfileResult:
    """Result of :func:`build_profile`.

    Attributes:
        folder: The profile folder.
        profile: The profile written.
        profile_json: ``profile.json``.
        plot: ``calibration.png``.
        run: The scoring run of the normals.
        score_seconds: Seconds spent scoring (``run_cohort``).
        total_seconds: Seconds for the whole build.
    """

    folder: Path
    profile: Profile
    profile_json: Path
    plot: Path
    run: RunSummary
    score_seconds: float
    total_seconds: float


def _normals_config(config: CohortConfig | str | Path) -> CohortConfig:
    cfg = load_cohort(config) if isinstance(config, str | Path) else config
    if cfg.output.threshold.method == "calibrated" or cfg.output.flag is not None:
        raise ConfigError(
            f"{cfg.source_file}: a normals cohort is calibrated, not calibrated against a profile; "
            "remove output.flag and use a fixed or percentile output.threshold"
        )
    if cfg.profile is None:  # the profile section switches the per-study lesion statistic on
        cfg = cfg.with_overrides(profile=ProfileConfig().model_dump(mode="json"))
    return with_reference_mode(cfg)  # profile.references: calibrate in the mode reviews will use


def _statistic_from_heatmap(folder: Path, min_lesion_ml: float) -> float:
    """Lesion statistic of a study scored before profiling (its ledger row has none)."""
    import nibabel as nib

    f = folder / "heatmap.nii.gz"
    if not f.is_file():
        raise OutputError(
            f"{folder}: this normal was scored without a profile section and without heatmap.nii.gz; "
            "run medzsad profile with --force to rescore it"
        )
    img = cast(Any, nib.load(str(f)))
    return lesion_statistic_affine(np.asarray(img.dataobj, dtype=np.float32), img.affine, min_lesion_ml)


def _records(summary: RunSummary, cfg: CohortConfig) -> list[CalibrationRecord]:
    """The done normals of this cohort, from the ledger the run wrote."""
    out = []
    with Ledger(summary.out_dir / LEDGER_FILE) as ledger:
        for outcome in summary.outcomes:
            row = ledger.get(outcome.study_id)
            if row is None or row.state is not StudyState.DONE:
                continue
            o = row.outputs
            stat = o.get("lesion_statistic")
            if stat is None:
                stat = _statistic_from_heatmap(
                    summary.out_dir / "studies" / row.safe_id, cfg.output.threshold.min_lesion_ml
                )
            out.append(
                CalibrationRecord(row.safe_id, dict(o.get("stratum", {})), float(o["score"]), float(stat))
            )
    return out


def _select_calibration(
    records: list[CalibrationRecord], settings: ProfileConfig, references: tuple[str, ...] = ()
) -> list[CalibrationRecord]:
    """The calibration studies: the scored normals that are not references (safe ids)."""
    refs = set(references)
    kept = [r for r in records if r.safe_id not in refs]
    check_disjoint(references, [r.safe_id for r in kept])
    return sorted(kept, key=lambda r: r.safe_id)


def _group(records: list[CalibrationRecord], settings: ProfileConfig) -> dict[str, Stratum]:
    groups: dict[str, list[CalibrationRecord]] = {}
    for r in records:
        groups.setdefault(stratum_key(r.stratum, settings.strata), []).append(r)
    return {
        key: Stratum(
            key,
            {f: rs[0].stratum.get(f, "") for f in settings.strata},
            tuple(CalibrationStudy(r.safe_id, r.score, r.lesion_statistic) for r in rs),
        )
        for key, rs in sorted(groups.items())
    }


def _check_counts(strata: dict[str, Stratum], alpha: float, source: str) -> None:
    need = min_normals(alpha)
    short = [(k, s.n) for k, s in strata.items() if s.n < need]
    if not strata:
        raise ConfigError(
            f"{source}: no normal study was scored; a profile needs at least {need} (alpha {alpha:g})"
        )
    if short:
        detail = "; ".join(f"stratum {k!r} has {n}, needs {need - n} more" for k, n in short)
        raise ConfigError(
            f"{source}: too few normals for alpha {alpha:g} (each stratum needs ceil(1/alpha) - 1 = {need}): "
            f"{detail}. Add normal studies of those strata, drop a field from profile.strata, or raise "
            "profile.alpha"
        )


def _check_enough_studies(cfg: CohortConfig, settings: ProfileConfig) -> list[StudyInput]:
    """The normals cohort's studies; a cohort too small for ``profile.alpha`` is refused before scoring.

    Each stratum needs ``ceil(1/alpha) - 1`` normals (plus the references, which are not used for
    calibration); with strata the count per stratum is known only after reading, so this checks
    the whole cohort, and :func:`_check_counts` each stratum after scoring.

    Raises:
        ConfigError: Fewer studies than one stratum needs.
    """
    need = min_normals(settings.alpha) + settings.references
    studies = collect_studies(cfg)
    have = len(studies)
    if have < need:
        refs = f" + {settings.references} references" if settings.references else ""
        raise ConfigError(
            f"{cfg.source_file}: {have} normal studies, but a profile at alpha {settings.alpha:g} needs at "
            f"least {need} (ceil(1/alpha) - 1 = {min_normals(settings.alpha)} for calibration{refs}); "
            f"add {need - have} normal studies or raise profile.alpha (nothing was scored)"
        )
    return studies


def _assemble(
    cfg: CohortConfig, settings: ProfileConfig, summary: RunSummary, refs: ProfileReferences | None
) -> Profile:
    """The profile from the scored normals: calibration studies, grouped by stratum, counts checked."""
    records = _select_calibration(_records(summary, cfg), settings, refs.split.references if refs else ())
    strata = _group(records, settings)
    _check_counts(strata, settings.alpha, cfg.source_file)
    return Profile(
        name=cfg.name,
        model_hash=model_hash(cfg),
        pipeline_hash=pipeline_hash(cfg),
        strata_fields=tuple(settings.strata),
        min_lesion_ml=cfg.output.threshold.min_lesion_ml,
        alpha_min=settings.alpha,
        strata=strata,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        medzsad_version=__version__,
        n_failed=summary.n_failed,
        extra={
            "smoke_run": cfg.model.is_smoke,
            # what the hashes cover: a refusal names what differs, and run -i --profile uses them
            "settings": {
                "model": model_settings(cfg),
                "pipeline": pipeline_settings(cfg),
                "pipeline_section": cfg.pipeline.model_dump(mode="json", exclude_none=True),
            },
            **({"references": refs.to_json()} if refs is not None else {}),
        },
    )


def build_profile(
    config: CohortConfig | str | Path,
    out_dir: str | Path | None = None,
    options: RunOptions | None = None,
    *,
    scorer: SliceScorer | None = None,
    loader: StudyLoader | None = None,
    on_study: OnStudy | None = None,
) -> ProfileResult:
    """Score a cohort of normal studies and write its profile folder.

    Args:
        config: The normals cohort (a :class:`CohortConfig` or YAML path), with the same
            ``inputs``/``pipeline``/``model`` sections a review cohort would have.
        out_dir: Profile folder (default ``<run output dir>/profile``).
        options: Run options for scoring (force, device, batch size, output dir, progress).
        scorer: Model instead of the one built from ``config.model`` (tests).
        loader: Study loader (tests).
        on_study: Called after every normal study with ``(outcome, index, total)`` (progress lines).

    Returns:
        :class:`ProfileResult`.

    Raises:
        ConfigError: Invalid cohort, or a stratum with too few normals for ``profile.alpha`` (the
            message names the stratum and how many more normals it needs).
        ModelError: The model cannot be built.
        OutputError: The run or profile folder cannot be written, the profile folder is a file, or
            it holds files that are not a medzsad profile's (refused before anything is scored; a
            previous profile there is replaced only once the new one is complete).
    """
    t0 = time.perf_counter()
    cfg = _normals_config(config)
    settings = cfg.profile or ProfileConfig()
    options = options or RunOptions()
    if options.dry_run:
        raise ConfigError("medzsad profile has no dry run; use medzsad run --dry-run on the normals cohort")
    cfg = apply_options(cfg, options)  # the model hash is that of the model that scores (--smoke)
    folder = Path(out_dir) if out_dir is not None else cfg.out_dir / "profile"
    real, studies = _preflight(cfg, settings, folder, scorer)  # before any model is loaded or file written
    refs: ProfileReferences | None = None
    with staged_folder(real, folder) as stage:  # a failed build leaves no half-written profile
        if settings.references:  # draw the references and build their bank before scoring the rest
            refs = prepare_profile_references(cfg, stage, scorer=scorer, loader=loader, studies=studies)
            scorer = refs.scorer
        summary = run_cohort(cfg, options, scorer=scorer, loader=loader, on_study=on_study, studies=studies)
        t_score = time.perf_counter() - t0
        if summary.n_failed:
            log.warning(
                "%d normal studies failed and are left out of the profile (see errors.csv)", summary.n_failed
            )
        profile = _assemble(cfg, settings, summary, refs)
        write_profile(stage, profile)
        write_calibration_plot(stage / PLOT_FILE, replace(profile, path=folder))
    profile = replace(profile, path=folder)
    n_strata = len(profile.strata)
    log.info("profile %s: %d normals in %d strata -> %s", cfg.name, profile.n_studies, n_strata, folder)
    return ProfileResult(
        folder, profile, folder / PROFILE_FILE, folder / PLOT_FILE, summary, t_score, time.perf_counter() - t0
    )


def _preflight(
    cfg: CohortConfig, settings: ProfileConfig, folder: Path, scorer: SliceScorer | None
) -> tuple[Path, list[StudyInput]]:
    """What can stop the build, checked as ``medzsad run`` checks it: before anything is loaded or written.

    The run folder and the profile folder (:func:`check_profile_folder`), then the studies (too few
    for ``profile.alpha``: :func:`_check_enough_studies`), then the weights and device.

    Returns:
        The profile folder's real path and the normals cohort's studies.
    """
    check_output_outside_inputs(cfg)
    check_output_folder(cfg.out_dir)
    real = check_profile_folder(folder, cfg)
    studies = _check_enough_studies(cfg, settings)
    if scorer is None:
        check_model(cfg)
    return real, studies
