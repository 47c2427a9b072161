"""Before a run: the output folder, what a killed run left, and which studies to run or skip."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from medzsad.cohort.inputs import input_hash
from medzsad.cohort.ledger import LEDGER_FILE, Ledger, StudyState
from medzsad.cohort.options import RunOptions, RunSummary, StudyOutcome
from medzsad.cohort.preflight import TABLE_FILES
from medzsad.config import CohortConfig
from medzsad.errors import OutputError
from medzsad.fileio import TEMP_MARK
from medzsad.ids import hashed_id, unique_safe_ids
from medzsad.study.hashing import study_config_hash
from medzsad.study.outputs import PARTIAL_MARK
from medzsad.study.types import StudyInput, StudyJob

__all__ = ["check_writable", "clean_partials", "plan", "dry_run", "TABLE_FILES"]

log = logging.getLogger(__name__)


def check_writable(out: Path) -> None:
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


def clean_partials(out: Path, ledger: Ledger) -> None:
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
    for name in TABLE_FILES:
        ledger.claim(f"{name}{TEMP_MARK}{os.getpid()}", "temp")


def plan(
    config: CohortConfig, studies: list[StudyInput], ledger: Ledger | None, force: bool
) -> list[tuple[StudyJob, bool]]:
    """Jobs with a ``skip`` flag (done before with the same hashes and its folder present)."""
    safe = unique_safe_ids([s.study_id for s in studies])
    chash = study_config_hash(config)
    studies_dir = config.out_dir / "studies"
    planned = []
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
        replaced = (
            row is not None and row.state is StudyState.DONE and ihash not in (row.input_hash, "missing")
        )
        if replaced and not force:  # a missing input fails (and is said) without replacing anything
            # also two inputs that share a folder name (every CD's DICOM/) into one --out
            log.warning(
                "study %s: its input is not the one its results were made from (other files, sizes or "
                "times): it runs again and its results are replaced",
                label,
            )
        planned.append((job, skip))
    return planned


def dry_run(cfg: CohortConfig, studies: list[StudyInput], options: RunOptions) -> RunSummary:
    """What a run would do, from the ledger if there is one; nothing is written."""
    db = cfg.out_dir / LEDGER_FILE
    ledger = Ledger(db) if db.exists() else None
    try:
        planned = plan(cfg, studies, ledger, options.force)
    finally:
        if ledger is not None:
            ledger.close()
    outcomes = tuple(
        StudyOutcome(job.study.study_id, job.log_id, "skipped" if skip else "would-run")
        for job, skip in planned
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
