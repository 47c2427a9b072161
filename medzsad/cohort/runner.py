"""``run_cohort``: every study of a cohort through the stages, crash-safe and resumable.

Stages: load -> score -> assemble -> post-process -> write; the ledger protocol is described in
:mod:`medzsad.cohort.ledger`.

A study that fails is recorded (ledger, errors.csv) and the run goes on. A study already done with
the same input and config hashes is skipped unless ``force``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medzsad.cohort.ids import hashed_id, unique_safe_ids
from medzsad.cohort.inputs import StudyInput, collect_studies, input_hash
from medzsad.cohort.ledger import Ledger, StudyState
from medzsad.cohort.loading import StudyLoader, default_loader
from medzsad.cohort.metrics import cohort_metrics, write_metrics
from medzsad.cohort.pipeline import PipelineExecutor
from medzsad.cohort.run_lock import run_lock
from medzsad.cohort.scorer import SliceScorer, build_scorer
from medzsad.cohort.study_job import StudyFinish, StudyJob
from medzsad.cohort.study_stages import CohortStages, record_finish
from medzsad.cohort.study_writer import PARTIAL_MARK
from medzsad.cohort.tables import studies_table, write_cohort_tables, write_review_page
from medzsad.config import CohortConfig, OutputKind, load_cohort, study_config_hash
from medzsad.report.atomic import remove_stale_temps

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
    """

    force: bool = False
    dry_run: bool = False
    show_ids: bool | None = None
    device: str | None = None
    batch_size: int | None = None
    out_dir: str | None = None
    progress: str = "auto"


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
    changes: dict[str, object] = {}
    if options.device is not None:
        changes["model.device"] = options.device
    if options.batch_size is not None:
        changes["model.batch_size"] = options.batch_size
    if options.out_dir is not None:
        changes["output.dir"] = str(Path(options.out_dir).resolve())
    if options.show_ids is not None:
        changes["output.show_ids"] = options.show_ids
    return config.with_overrides(**changes) if changes else config


def _clean_partials(studies_dir: Path) -> None:
    """Remove what a killed run left: ``*.partial-<pid>`` folders and ``*.tmp-<pid>`` files."""
    if not studies_dir.is_dir():
        return
    for p in studies_dir.iterdir():
        if PARTIAL_MARK in p.name and p.is_dir():
            log.info("removing unfinished study folder from an interrupted run: %s", p.name)
            shutil.rmtree(p, ignore_errors=True)
    remove_stale_temps(studies_dir.parent)


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
        # logs, progress lines and errors name a study by this label: a hash unless ids are asked for
        label = s.study_id if config.output.show_ids else hashed_id(s.study_id)
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
    use_bar = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
    if not use_bar:
        yield lambda outcome: None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit="study", dynamic_ncols=True, file=sys.stderr)
    try:

        def step(outcome: StudyOutcome) -> None:
            score = f" score={outcome.score:.4f}" if outcome.score is not None else ""
            error = f" error={outcome.error[:100]}" if outcome.error else ""
            bar.write(
                f"{outcome.log_id} {outcome.status}{score}{error} ({outcome.seconds:.1f} s)", file=sys.stderr
            )
            bar.set_postfix_str(f"{outcome.log_id} {outcome.status}")
            bar.update(1)

        yield step
    finally:
        bar.close()


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
    studies = collect_studies(cfg)
    out = cfg.out_dir
    if options.dry_run:
        return _dry_run(cfg, studies, options)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out), Ledger(out / "ledger.sqlite") as ledger:
        _clean_partials(out / "studies")
        (out / "studies").mkdir(exist_ok=True)
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
        if todo:
            if cfg.executor.kind == "ray":
                results = _execute_ray(cfg, todo, scorer, loader or default_loader, ledger)
            else:
                model = scorer if scorer is not None else build_scorer(cfg)
                results = _execute(cfg, todo, model, loader or default_loader, ledger)
            outcomes.update(_collect(cfg, todo, results, options, on_study))
        rows = {r.study_id: r for r in ledger.rows()}
    studies_csv, errors_csv = write_cohort_tables(out, studies, rows)
    if OutputKind.HTML in cfg.output.outputs:
        write_review_page(out, studies_table(studies, rows), f"medzsad {cfg.name}")
    metrics = cohort_metrics(studies, rows, out / "studies")
    metrics_json = write_metrics(out, metrics) if metrics is not None else None
    ordered = tuple(outcomes[s.study_id] for s in studies if s.study_id in outcomes)
    failed = tuple((o.study_id, o.error) for o in ordered if o.status == "failed")
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
        writers=ex.writers,
        write_queue=ex.write_queue,
        batch_size=cfg.model.batch_size,
        timeout_s=ex.study_timeout_s,
        memory_gb=ex.worker_memory_gb,
    )


Finishes = tuple[Iterator[tuple[StudyJob, StudyFinish]], threading.Event]


def _execute(
    cfg: CohortConfig, todo: list[StudyJob], model: SliceScorer, loader: StudyLoader, ledger: Ledger
) -> Finishes:
    """The local pipeline: ``(job, finish)`` in job order, each recorded in the ledger."""
    stop = threading.Event()
    stages = CohortStages(cfg, model, loader, ledger, stop)

    def finishes() -> Iterator[tuple[StudyJob, StudyFinish]]:
        for job, res in zip(todo, _executor(cfg).run(todo, stages, stop), strict=False):
            stages.record(job, res)
            yield job, res

    return finishes(), stop


def _execute_ray(
    cfg: CohortConfig, todo: list[StudyJob], scorer: SliceScorer | None, loader: StudyLoader, ledger: Ledger
) -> Finishes:
    """Ray actors (:mod:`medzsad.cohort.ray_executor`); the ledger stays with this process."""
    from medzsad.cohort.ray_executor import RayExecutor, RaySettings

    ex = cfg.executor
    settings = RaySettings(
        address=ex.address,
        workers=max(1, ex.n_workers),
        gpus_per_worker=ex.gpus_per_worker,
        cpus_per_worker=ex.cpus_per_worker,
        max_retries=ex.max_retries,
    )
    stop = threading.Event()
    executor = RayExecutor(cfg, loader, settings, scorer)

    def begin(job: StudyJob) -> None:
        ledger.mark_running(job.study.study_id, job.safe_id, job.input_hash, job.config_hash)

    def finishes() -> Iterator[tuple[StudyJob, StudyFinish]]:
        for job, res in zip(todo, executor.run(todo, begin, stop), strict=False):
            record_finish(ledger, job, res)
            yield job, res

    return finishes(), stop


def _collect(
    cfg: CohortConfig,
    todo: list[StudyJob],
    results: Finishes,
    options: RunOptions,
    on_study: Callable[[StudyOutcome, int, int], None] | None,
) -> dict[str, StudyOutcome]:
    """Progress, callbacks and ``continue_on_error`` over the executor's recorded finishes."""
    finishes, stop = results
    out: dict[str, StudyOutcome] = {}
    with _progress(len(todo), options.progress) as step:
        for i, (job, res) in enumerate(finishes, start=1):
            if res.status == "cancelled":
                continue  # the run stopped before this study; the next run picks it up
            sid = job.study.study_id
            outcome = StudyOutcome(sid, job.log_id, res.status, res.score, res.error, res.seconds)
            out[outcome.study_id] = outcome
            step(outcome)
            if on_study is not None:
                on_study(outcome, i, len(todo))
            if outcome.status == "failed" and not cfg.executor.continue_on_error and not stop.is_set():
                log.warning("stopping after a failed study (executor.continue_on_error: false)")
                stop.set()  # the rest stay pending; the next run picks them up
    return out


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
