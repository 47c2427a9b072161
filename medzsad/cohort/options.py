"""What a run is asked to do and what it reports: options, per-study outcomes, the run summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medzsad.config import CohortConfig

__all__ = ["RunOptions", "StudyOutcome", "RunSummary", "OnStudy", "apply_options"]


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
    """What happened to one study: ``done``, ``skipped``, ``failed`` or (dry run) ``would-run``.

    ``warnings``: how a done study was read (gaps, irregular spacing, a series fallback), as in
    the ``warnings`` column of studies.csv.
    """

    study_id: str
    log_id: str
    status: str
    score: float | None = None
    error: str = ""
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()

    def line(self) -> str:
        """The terminal's line: ``s-1a2b3c4d5e done score=0.8123 (12.4 s) [1 warning: 161 missing ...]``."""
        score = f" score={self.score:.4f}" if self.score is not None else ""
        error = f" error={self.error[:400]}" if self.error else ""
        n = len(self.warnings)
        warned = f" [{n} warning{'s' if n > 1 else ''}: {'; '.join(self.warnings)[:400]}]" if n else ""
        return f"{self.log_id} {self.status}{score}{error} ({self.seconds:.1f} s){warned}"


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
        n_output_failures: Optional outputs (overlay, DICOM SEG/SR, ...) of done studies that were
            not written; each is a row of ``errors.csv`` (stage ``output``), the study stands.
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
    n_output_failures: int = 0

    @property
    def ok(self) -> bool:
        """True when no study failed."""
        return self.n_failed == 0


def apply_options(config: CohortConfig, options: RunOptions) -> CohortConfig:
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


#: Called after every study with ``(outcome, index, total)`` (CLI progress lines, output.push).
OnStudy = Callable[[StudyOutcome, int, int], None]
