"""``run_cohort``: every study of a cohort through the stages, crash-safe and resumable.

Stages: load -> score -> assemble -> post-process -> write; the ledger protocol is described in
:mod:`medzsad.cohort.ledger`.

A study that fails is recorded (ledger, errors.csv) and the run goes on. A study already done with
the same input and config hashes is skipped unless ``force``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medzsad.calibration.operating_point import check_cohort, refuse_uncalibrated, run_operating_point
from medzsad.cohort.ids import hashed_id, unique_safe_ids
from medzsad.cohort.inputs import StudyInput, collect_studies, input_hash
from medzsad.cohort.ledger import Ledger, LedgerRow, StudyState
from medzsad.cohort.loading import StudyLoader, default_loader
from medzsad.cohort.metrics import cohort_metrics, write_metrics
from medzsad.cohort.pipeline import PipelineExecutor
from medzsad.cohort.run_lock import run_lock
from medzsad.cohort.scorer import SliceScorer, build_scorer
from medzsad.cohort.study_job import StudyJob
from medzsad.cohort.study_stages import CohortStages, LedgerStages
from medzsad.cohort.study_writer import PARTIAL_MARK
from medzsad.cohort.tables import studies_table, write_cohort_tables, write_review_page
from medzsad.config import CohortConfig, OutputKind, load_cohort, study_config_hash
from medzsad.config.pacs import PushConfig
from medzsad.errors import OutputError
from medzsad.fileio import TEMP_MARK
from medzsad.progress import NullBar, progress_bar
from medzsad.report.optional import OutputFailure, attempt

__all__ = ["RunOptions", "StudyOutcome", "RunSummary", "run_cohort"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Command-line style overrides of a run.

    Attributes:
        force: Recompute studies that are already done.
        dry_run: Only list what would run; write nothing.
        show_ids: Show real study ids in logs and overlays (default: the cohort's ``output.show_ids``).
        device: Override ``model.device``.
        batch_size: Override ``model.batch_size``.
        out_dir: Override ``output.dir`` (relative to the current directory).
        progress: ``"auto"`` (a bar on a TTY), ``"bar"``, or ``"off"``.
        smoke: Swap the cohort's model for the tiny random-weight one (offline; outputs marked SMOKE).
    """

    force: bool = False
    dry_run: bool = False
    show_ids: bool | None = None
    device: str | None = None
    batch_size: int | None = None
    out_dir: str | None = None
    progress: str = "auto"
    smoke: bool = False


@dataclass(frozen=True)
class StudyOutcome:
    """What happened to one study: ``done``, ``skipped``, ``failed`` or (dry run) ``would-run``."""

    study_id: str
    log_id: str
    status: str
    score: float | None = None
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class RunSummary:
    """Result of :func:`run_cohort`.

    Attributes:
        out_dir: The output directory.
        n_done: Studies computed in this run.
        n_skipped: Studies already done (same hashes) and not recomputed.
        n_failed: Studies that failed.
        studies_csv: ``studies.csv`` (``None`` in a dry run).
        errors_csv: ``errors.csv`` (``None`` in a dry run).
        metrics_json: ``metrics.json`` when labels or masks were given.
        outcomes: One outcome per study, in cohort order.
        smoke: The run used random weights.
        dry_run: Nothing was run.
    """

    out_dir: Path
    n_done: int
    n_skipped: int
    n_failed: int
    studies_csv: Path | None
    errors_csv: Path | None
    metrics_json: Path | None
    outcomes: tuple[StudyOutcome, ...] = ()
    smoke: bool = False
    dry_run: bool = False
    failures: tuple[tuple[str, str], ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when no study failed."""
        return self.n_failed == 0


def _apply_options(config: CohortConfig, options: RunOptions) -> CohortConfig:
    """The run's cohort: options applied and the output folder made absolute.

    The folder is absolute from here on: it is sent to other processes and machines, and every
    writer then names the same file the same way (a relative folder broke the Slicer bundle).
    """
    changes: dict[str, object] = {}
    if options.smoke and not config.model.is_smoke:
        changes["model"] = config.model.smoke_swapped()
    if options.device is not None:
        changes["model.device"] = options.device
    if options.batch_size is not None:
        changes["model.batch_size"] = options.batch_size
    out = Path(options.out_dir) if options.out_dir is not None else config.out_dir
    if out != out.resolve() or options.out_dir is not None:
        changes["output.dir"] = str(out.resolve())
    if options.show_ids is not None:
        changes["output.show_ids"] = options.show_ids
    return config.with_overrides(**changes) if changes else config


def _writable(out: Path) -> None:
    """Create ``out/studies`` and check that files can be created in both folders.

    Raises:
        OutputError: A folder cannot be created or written (read-only, permissions, disk full).
    """
    for folder in (out, out / "studies"):
        probe = folder / f".medzsad-write-test{TEMP_MARK}{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise OutputError(
                f"{folder}: the output folder is not writable ({e.strerror or e}); choose a writable "
                "--out (or output.dir), or fix its permissions"
            ) from e


_TABLE_FILES = ("studies.csv", "errors.csv", "metrics.json", "report.html")


def _clean_partials(out: Path, ledger: Ledger) -> None:
    """Remove what a killed run left, and only that: the partial folders and temporary files it claimed.

    A ``*.partial-*`` folder or ``*.tmp-*`` file that medzsad did not record creating (a user's
    ``results.tmp-2024``, ``studies/old.partial-keep/``) is left in place.
    """
    for rel, kind in ledger.owned().items():
        if kind not in ("partial", "temp"):
            continue
        p = out / rel
        if p.is_dir() and not p.is_symlink():
            log.info("removing unfinished study folder from an interrupted run: %s", p.name)
            shutil.rmtree(p, ignore_errors=True)
        elif p.is_file() or p.is_symlink():
            p.unlink(missing_ok=True)
        ledger.release(rel)
    studies_dir = out / "studies"
    if studies_dir.is_dir():
        for p in studies_dir.iterdir():
            if PARTIAL_MARK in p.name:
                log.info("left in place (not created by medzsad): studies/%s", p.name)
    # the cohort tables are written after the ledger is closed: claim their temporary names now
    for name in _TABLE_FILES:
        ledger.claim(f"{name}{TEMP_MARK}{os.getpid()}", "temp")


def _plan(
    config: CohortConfig, studies: list[StudyInput], ledger: Ledger | None, force: bool
) -> list[tuple[StudyJob, bool]]:
    """Jobs with a ``skip`` flag (done before with the same hashes and its folder present)."""
    safe = unique_safe_ids([s.study_id for s in studies])
    chash = study_config_hash(config)
    studies_dir = config.out_dir / "studies"
    plan = []
    for s in studies:
        try:
            ihash = input_hash(s)
        except Exception:  # missing input: processed (and failed) as a study, not a run error
            ihash = "missing"
        # logs, progress lines and the console name a study by this label: its output folder's name
        # with output.show_ids / --show-ids, else a hash (see docs/privacy.md)
        label = safe[s.study_id] if config.output.show_ids else hashed_id(s.study_id)
        job = StudyJob(s, safe[s.study_id], ihash, chash, label)
        row = ledger.get(s.study_id) if ledger is not None else None
        skip = (
            not force
            and row is not None
            and row.state is StudyState.DONE
            and row.input_hash == ihash
            and row.config_hash == chash
            and (studies_dir / row.safe_id).is_dir()
        )
        plan.append((job, skip))
    return plan


@contextlib.contextmanager
def _progress(total: int, mode: str) -> Iterator[Callable[[StudyOutcome], None]]:
    enabled = {"bar": True, "off": False}.get(mode)  # "auto": a bar on a terminal only
    with progress_bar(total, enabled=enabled, unit="study", leave=True) as bar:

        def step(outcome: StudyOutcome) -> None:
            if isinstance(bar, NullBar):
                return
            score = f" score={outcome.score:.4f}" if outcome.score is not None else ""
            error = f" error={outcome.error[:400]}" if outcome.error else ""
            bar.write(
                f"{outcome.log_id} {outcome.status}{score}{error} ({outcome.seconds:.1f} s)", file=sys.stderr
            )
            bar.set_postfix_str(f"{outcome.log_id} {outcome.status}")
            bar.update(1)

        yield step


def run_cohort(
    config: CohortConfig | str | Path,
    options: RunOptions | None = None,
    *,
    scorer: SliceScorer | None = None,
    loader: StudyLoader | None = None,
    on_study: Callable[[StudyOutcome, int, int], None] | None = None,
) -> RunSummary:
    """Run a cohort.

    Args:
        config: A :class:`CohortConfig` or the path of a cohort YAML file.
        options: Overrides (force, dry run, device, batch size, output dir, ids, progress).
        scorer: Model to use instead of building one from ``config.model`` (tests, notebooks).
        loader: Study loader instead of :func:`medzsad.cohort.loading.default_loader`.
        on_study: Called after every study with ``(outcome, index, total)`` (CLI progress lines).

    Returns:
        :class:`RunSummary`; failed studies are in it, not raised.

    Raises:
        ConfigError: Invalid cohort file or options.
        InputError: The inputs name no study.
        ModelError: The model cannot be built (missing weights: the message says how to get them).
        OutputError: The output directory cannot be written or is in use by another run.
    """
    options = options or RunOptions()
    cfg = load_cohort(config) if isinstance(config, str | Path) else config
    cfg = _apply_options(cfg, options)
    check_cohort(cfg)  # a profile that does not fit (hashes, alpha) is refused before any scoring
    studies = collect_studies(cfg)
    out = cfg.out_dir
    if options.dry_run:
        return _dry_run(cfg, studies, options)
    _writable(out)
    with run_lock(out), Ledger(out / "ledger.sqlite") as ledger:
        _clean_partials(out, ledger)
        ledger.set_meta("cohort", cfg.name)
        plan = _plan(cfg, studies, ledger, options.force)
        todo = [job for job, skip in plan if not skip]
        outcomes: dict[str, StudyOutcome] = {
            job.study.study_id: StudyOutcome(job.study.study_id, job.log_id, "skipped")
            for job, skip in plan
            if skip
        }
        log.info(
            "cohort %s: %d studies, %d to run, %d already done", cfg.name, len(plan), len(todo), len(outcomes)
        )
        pushed: frozenset[str] = frozenset()
        if todo:
            with _pushing(cfg, todo, on_study) as (notify, attempted):
                done = _execute(cfg, todo, scorer, loader or default_loader, ledger, options, notify)
                outcomes.update(done)
            pushed = frozenset(attempted)
        rows = {r.study_id: r for r in ledger.rows()}
    return _finish(cfg, studies, rows, outcomes, pushed)


def _finish(
    cfg: CohortConfig,
    studies: list[StudyInput],
    rows: dict[str, LedgerRow],
    outcomes: dict[str, StudyOutcome],
    pushed: frozenset[str] = frozenset(),
) -> RunSummary:
    """Cohort tables, review page and metrics from the ledger; the run's summary.

    ``pushed``: studies this run already tried to send (``output.push``); the rest are sent here.
    """
    out = cfg.out_dir
    smoke = cfg.model.is_smoke
    studies_csv, errors_csv = write_cohort_tables(out, studies, rows, smoke, cfg)
    operating_point = run_operating_point(cfg)
    if cfg.output.push is not None:
        _push_outputs(out, cfg.output.push, pushed)
    metrics = cohort_metrics(studies, rows, out / "studies")
    metrics_json = (
        write_metrics(out, {**metrics, "smoke_run": smoke, "operating_point": operating_point})
        if metrics is not None
        else None
    )
    if OutputKind.HTML in cfg.output.outputs:
        _write_html(out, studies_table(studies, rows, smoke, cfg), cfg, metrics)
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
        smoke=cfg.model.is_smoke,
        failures=failed,
    )


def _executor(cfg: CohortConfig) -> PipelineExecutor:
    ex = cfg.executor
    return PipelineExecutor(
        workers=ex.n_workers,
        prefetch=ex.prefetch,
        writers=ex.n_writers,
        write_queue=ex.write_queue,
        batch_size=cfg.model.batch_size,
        timeout_s=ex.study_timeout_s,
        memory_gb=ex.worker_memory_gb,
    )


OnStudy = Callable[[StudyOutcome, int, int], None]


@contextlib.contextmanager
def _pushing(
    cfg: CohortConfig, todo: list[StudyJob], on_study: OnStudy | None
) -> Iterator[tuple[OnStudy | None, set[str]]]:
    """``output.push``: a per-study callback sending each study's DICOM outputs as soon as it is done."""
    if cfg.output.push is None:
        yield on_study, set()
        return
    from medzsad.pacs.push import study_pusher

    safe = {job.study.study_id: job.safe_id for job in todo}
    with study_pusher(cfg.out_dir, cfg.output.push) as pusher:

        def notify(outcome: StudyOutcome, index: int, total: int) -> None:
            if outcome.status == "done":
                pusher.push_study(outcome.study_id, cfg.out_dir / "studies" / safe[outcome.study_id])
            if on_study is not None:
                on_study(outcome, index, total)

        yield notify, pusher.attempted


def _push_outputs(out: Path, destination: PushConfig, pushed: frozenset[str]) -> None:
    """Send what earlier runs finished and did not send; rewrite errors.csv's push rows."""
    from medzsad.pacs.push import push_run

    report = push_run(out, destination, skip=pushed)
    log.info("pushed to %s: %d sent, %d sent before", report.endpoint, report.n_sent, report.n_already)
    if report.failures:
        n = len(report.failures)
        log.warning("%d studies could not be sent to %s; see errors.csv", n, report.endpoint)


def _write_html(out: Path, table: pd.DataFrame, cfg: CohortConfig, metrics: dict[str, Any] | None) -> None:
    """The review page is optional: a failure is logged and the run's other outputs stand."""
    from medzsad.report.review_header import cohort_header

    failed: list[OutputFailure] = []
    header = cohort_header(cfg, metrics)
    title = f"medzsad {cfg.name}"
    attempt(OutputKind.HTML.value, lambda: write_review_page(out, table, title, header), failed)
    for f in failed:
        log.warning("review page report.html not written: %s: %s", f.error_type, f.message[:300])


def _execute(
    cfg: CohortConfig,
    todo: list[StudyJob],
    scorer: SliceScorer | None,
    loader: StudyLoader,
    ledger: Ledger,
    options: RunOptions,
    on_study: Callable[[StudyOutcome, int, int], None] | None,
) -> dict[str, StudyOutcome]:
    """Run ``todo`` on the configured executor; the ledger and the outcomes stay in this thread."""
    stop = threading.Event()
    stages: LedgerStages
    if cfg.executor.kind == "ray":
        from medzsad.cohort.ray_executor import RayExecutor

        stages = LedgerStages(cfg, ledger)
        finishes = RayExecutor(cfg, loader, scorer).run(todo, stages.begin_at, stop)
    else:
        model = scorer if scorer is not None else build_scorer(cfg)
        stages = CohortStages(cfg, model, loader, ledger)
        finishes = _executor(cfg).run(todo, stages, stop)
    results: dict[str, StudyOutcome] = {}
    with _progress(len(todo), options.progress) as step:
        for i, (job, res) in enumerate(zip(todo, finishes, strict=False), start=1):
            stages.record(job, res)
            if res.status == "cancelled":
                continue  # the run stopped before this study; the next run picks it up
            error = res.error
            if error and not cfg.output.show_ids:
                error = _hidden_error(ledger, job.study.study_id)
            outcome = StudyOutcome(job.study.study_id, job.log_id, res.status, res.score, error, res.seconds)
            results[outcome.study_id] = outcome
            step(outcome)
            if on_study is not None:
                on_study(outcome, i, len(todo))
            if outcome.status == "failed" and not cfg.executor.continue_on_error and not stop.is_set():
                log.warning("stopping after a failed study (executor.continue_on_error: false)")
                stop.set()  # the rest stay pending; the next run picks them up
    return results


def _hidden_error(ledger: Ledger, study_id: str) -> str:
    """What the console shows of a failure without ``show_ids``: the error type (messages hold paths)."""
    row = ledger.get(study_id)
    kind = row.outputs.get("error_type", "error") if row is not None else "error"
    stage = row.outputs.get("stage", "") if row is not None else ""
    return f"{kind}{' at ' + stage if stage else ''} (message in errors.csv)"


def _dry_run(cfg: CohortConfig, studies: list[StudyInput], options: RunOptions) -> RunSummary:
    db = cfg.out_dir / "ledger.sqlite"
    ledger = Ledger(db) if db.exists() else None
    try:
        plan = _plan(cfg, studies, ledger, options.force)
    finally:
        if ledger is not None:
            ledger.close()
    outcomes = tuple(
        StudyOutcome(job.study.study_id, job.log_id, "skipped" if skip else "would-run") for job, skip in plan
    )
    return RunSummary(
        out_dir=cfg.out_dir,
        n_done=0,
        n_skipped=sum(o.status == "skipped" for o in outcomes),
        n_failed=0,
        studies_csv=None,
        errors_csv=None,
        metrics_json=None,
        outcomes=outcomes,
        smoke=cfg.model.is_smoke,
        dry_run=True,
    )
