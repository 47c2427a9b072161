"""Executing a run: every study of a cohort through its executor, crash-safe and resumable.

The entry point is :func:`medzsad.cohort.launch.run_cohort` (settings, preflight, then
:func:`execute`). A run collects the studies, plans which to run (the ledger skips studies
already done with the same input and config hashes, unless ``force``), hands them to the executor
of ``executor.kind`` (every executor runs :mod:`medzsad.study`), records each outcome in the ledger
in this thread, and writes the cohort tables, metrics and review page from the ledger. The ledger
protocol is in :mod:`medzsad.cohort.ledger`. A study that fails is recorded (ledger, errors.csv)
and the run goes on.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from medzsad.calibration.operating_point import refuse_uncalibrated, run_operating_point
from medzsad.cohort.executors import executor_for
from medzsad.cohort.executors.base import BuildModel, GivenModel, ModelSource, StudyWork
from medzsad.cohort.ledger import LEDGER_FILE, Ledger, LedgerRow
from medzsad.cohort.metrics import cohort_metrics, write_metrics
from medzsad.cohort.options import OnStudy, RunOptions, RunSummary, StudyOutcome
from medzsad.cohort.planning import check_writable, clean_partials, dry_run, plan
from medzsad.cohort.push import Pusher, push_remaining, pushing_as_done
from medzsad.cohort.recording import StudyRecorder, shown_error
from medzsad.cohort.run_lock import run_lock
from medzsad.cohort.run_progress import RunProgress
from medzsad.cohort.tables import output_failures, write_cohort_tables, write_review_page
from medzsad.config import CohortConfig, OutputKind
from medzsad.report.html_report import REPORT_NAME
from medzsad.study.loading import StudyLoader, default_loader
from medzsad.study.scorer import SliceScorer
from medzsad.study.types import StudyInput, StudyJob

__all__ = ["execute", "MODEL_META"]

log = logging.getLogger(__name__)


#: The ledger metadata key of the built model's description (what the review page states).
MODEL_META = "model"


def execute(
    cfg: CohortConfig,
    studies: list[StudyInput],
    options: RunOptions,
    *,
    scorer: SliceScorer | None = None,
    loader: StudyLoader | None = None,
    on_study: OnStudy | None = None,
) -> RunSummary:
    """Run a cohort whose settings are final and checked (:func:`medzsad.cohort.launch.run_cohort`).

    Args:
        cfg: The run's cohort: options applied, preflight passed.
        studies: Its studies (:func:`medzsad.cohort.inputs.collect_studies`).
        options: The run options (force, dry run, progress).
        scorer: Model to use instead of building one from ``cfg.model`` (tests, notebooks).
        loader: Study loader instead of :func:`medzsad.study.loading.default_loader`.
        on_study: Called after every study with ``(outcome, index, total)`` (CLI progress lines).

    Returns:
        :class:`RunSummary`; failed studies are in it, not raised.

    Raises:
        InputError: The inputs name no study.
        ModelError: The model cannot be built.
        OutputError: The output directory cannot be written or is in use by another run.
    """
    out = cfg.out_dir
    if options.dry_run:
        return dry_run(cfg, studies, options)
    check_writable(out)
    model: ModelSource = GivenModel(scorer) if scorer is not None else BuildModel(cfg)
    work = StudyWork(cfg, loader or default_loader, model)
    with run_lock(out), Ledger(out / LEDGER_FILE) as ledger:
        clean_partials(out, ledger)
        before = ledger.get_meta("cohort")
        if before is not None and before != cfg.name:  # the tables list this cohort's studies only
            log.warning("%s held cohort %r; its tables and review page now list cohort %r's studies "
                        "(its study folders stay)", out, before, cfg.name)  # fmt: skip
        ledger.set_meta("cohort", cfg.name)
        planned = plan(cfg, studies, ledger, options.force)
        todo = [job for job, skip in planned if not skip]
        outcomes: dict[str, StudyOutcome] = {
            job.study.study_id: StudyOutcome(job.study.study_id, job.log_id, "skipped")
            for job, skip in planned
            if skip
        }
        n_done = len(outcomes)
        log.info("cohort %s: %d studies, %d to run, %d done", cfg.name, len(planned), len(todo), n_done)
        pusher: Pusher | None = None
        if todo:
            try:
                with pushing_as_done(cfg, todo, on_study) as (notify, pusher):
                    outcomes.update(_execute(work, todo, ledger, options, notify))
            except KeyboardInterrupt:
                _tables_when_interrupted(cfg, studies, ledger)
                raise
        rows = {r.study_id: r for r in ledger.rows()}
        built = ledger.get_meta(MODEL_META)
    return _finish(cfg, studies, rows, outcomes, pusher, json.loads(built) if built else None)


def _tables_when_interrupted(cfg: CohortConfig, studies: list[StudyInput], ledger: Ledger) -> None:
    """``studies.csv`` and ``errors.csv`` of what finished before a Ctrl-C (the rest ``pending``).

    Written atomically like at the end of a run, so a second Ctrl-C leaves the previous tables
    or the new ones, never half a file; the next run rewrites them with everything. A failure here
    is logged: the interruption is what the user is told.
    """
    try:
        rows = {r.study_id: r for r in ledger.rows()}
        write_cohort_tables(cfg.out_dir, studies, rows, cfg.model.is_smoke, cfg)
        log.info("interrupted: studies.csv and errors.csv list the studies finished so far")
    except Exception as e:  # noqa: BLE001 - the interruption must still propagate
        log.warning("interrupted: the cohort tables could not be written (%s: %s)", type(e).__name__, e)


def _drop_stale(out: Path, *, metrics: bool, html: bool) -> None:
    """Remove an earlier run's metrics.json and report.html that this run does not write.

    They would describe other studies than studies.csv does (a walk-through found metrics.json
    of a six-study cohort beside the one-study table of the next run). In a folder with a ledger
    they are medzsad's (:data:`~medzsad.cohort.preflight.TABLE_FILES`).
    """
    for name, written in (("metrics.json", metrics), (REPORT_NAME, html)):
        path = out / name
        if not written and path.is_file() and not path.is_symlink():
            path.unlink()
            log.info("removed %s of an earlier run: this run writes none", name)


def _finish(
    cfg: CohortConfig,
    studies: list[StudyInput],
    rows: dict[str, LedgerRow],
    outcomes: dict[str, StudyOutcome],
    pusher: Pusher | None,
    model: dict[str, Any] | None,
) -> RunSummary:
    """Cohort tables, review page and metrics from the ledger; the run's summary.

    ``pusher``: what this run already sent as studies finished (``output.push``); the rest is sent
    here, after the tables and the page are written (a refused or unreachable PACS ends the run
    with its error, the results stay). ``model``: the built model's description (ledger metadata).
    """
    out = cfg.out_dir
    smoke = cfg.model.is_smoke
    studies_csv, errors_csv = write_cohort_tables(out, studies, rows, smoke, cfg)
    operating_point = run_operating_point(cfg)
    metrics = cohort_metrics(studies, rows, out / "studies")
    metrics_json = (
        write_metrics(out, {**metrics, "smoke_run": smoke, "operating_point": operating_point})
        if metrics is not None
        else None
    )
    html = OutputKind.HTML in cfg.output.outputs
    if html:
        write_review_page(out, studies, rows, cfg, metrics, model, operating_point)
    _drop_stale(out, metrics=metrics_json is not None, html=html)
    if cfg.output.push is not None:
        push_remaining(out, cfg.output.push, pusher)
    ordered = tuple(outcomes[s.study_id] for s in studies if s.study_id in outcomes)
    failed = tuple((o.study_id, o.error) for o in ordered if o.status == "failed")
    # studies outside the profile's strata: the others are done and the tables written, then refuse
    refuse_uncalibrated(cfg, [rows[sid] for sid, _ in failed if sid in rows], errors_csv)
    return RunSummary(
        out_dir=out,
        n_done=sum(o.status == "done" for o in ordered),
        n_skipped=sum(o.status == "skipped" for o in ordered),
        n_failed=len(failed),
        studies_csv=studies_csv,
        errors_csv=errors_csv,
        metrics_json=metrics_json,
        outcomes=ordered,
        smoke=smoke,
        failures=failed,
        n_output_failures=sum(len(output_failures(rows.get(s.study_id))) for s in studies),
    )


def _execute(
    work: StudyWork,
    todo: list[StudyJob],
    ledger: Ledger,
    options: RunOptions,
    on_study: OnStudy | None,
) -> dict[str, StudyOutcome]:
    """Run ``todo`` on the configured executor; the ledger and the outcomes stay in this thread."""
    cfg = work.cfg
    stop = threading.Event()
    results: dict[str, StudyOutcome] = {}
    described = False
    with RunProgress(len(todo), options.progress) as progress:
        recorder = StudyRecorder(cfg, ledger, on_scored=progress.scored)
        executor = executor_for(cfg)
        finishes = executor.run(todo, work, recorder, stop)
        for i, (job, res) in enumerate(zip(todo, finishes, strict=False), start=1):
            if not described and executor.model_info is not None:  # the model that was built
                ledger.set_meta(MODEL_META, json.dumps(executor.model_info.to_json(), default=str))
                described = True
            recorder.record(job, res)
            if res.status == "cancelled":
                continue  # the run stopped before this study; the next run picks it up
            error = shown_error(cfg, job, res)
            warned = tuple(str(w) for w in res.summary.get("warnings", ()))
            outcome = StudyOutcome(
                job.study.study_id, job.log_id, res.status, res.score, error, res.seconds, warned
            )
            results[outcome.study_id] = outcome
            progress.finished(outcome)
            if on_study is not None:
                on_study(outcome, i, len(todo))
            if outcome.status == "failed" and not cfg.executor.continue_on_error and not stop.is_set():
                log.warning("stopping after a failed study (executor.continue_on_error: false)")
                stop.set()  # the rest stay pending; the next run picks them up
    return results
