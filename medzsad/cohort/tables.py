"""Cohort tables, regenerated from the ledger after every run: studies.csv and errors.csv.

errors.csv has one row per failed study (``stage`` is where it failed, ``output`` empty) and one
row per optional output that failed in a study that is still ``done`` (``stage`` is ``output``,
``output`` names it, e.g. ``dicom-seg``). studies.csv lists those failures in ``output_errors``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medzsad.calibration.operating_point import flag_columns
from medzsad.cohort.ledger import LedgerRow, StudyState
from medzsad.cohort.push_records import PushFailure
from medzsad.config import CohortConfig, OutputKind
from medzsad.fileio import write_csv
from medzsad.report.cells import safe_frame
from medzsad.report.html_report import write_report_html
from medzsad.report.optional import OutputFailure, attempt
from medzsad.report.review_header import cohort_header
from medzsad.study.types import StudyInput

__all__ = [
    "STUDY_COLUMNS",
    "ERROR_COLUMNS",
    "OUTPUT_STAGE",
    "PUSH_STAGE",
    "studies_table",
    "errors_table",
    "write_cohort_tables",
    "replace_push_errors",
    "write_review_page",
]

log = logging.getLogger(__name__)

STUDY_COLUMNS = [
    "study_id", "safe_id", "source", "series_uid", "series_description", "modality", "slices",
    "scored_slices", "score", "rank", "lesion_count", "lesion_volume_ml", "label", "status", "error",
    "output_errors", "warnings", "notes", "smoke_run",
]  # fmt: skip
ERROR_COLUMNS = ["study_id", "source", "stage", "output", "error_type", "message"]
#: ``stage`` of an errors.csv row about an optional output of a done study.
OUTPUT_STAGE = "output"
#: ``stage`` of an errors.csv row about a study whose outputs could not be sent to a PACS.
PUSH_STAGE = "push"


def output_failures(row: LedgerRow | None) -> list[dict[str, str]]:
    """The optional outputs of a done study that were not written (``OutputFailure.to_dict`` records)."""
    if row is None or row.state is not StudyState.DONE:
        return []
    return [f for f in row.outputs.get("output_failures", []) if isinstance(f, dict)]


def _cell(items: object) -> str:
    """A list of texts from the ledger (a study's warnings or notes) as one cell."""
    return "; ".join(str(i) for i in items) if isinstance(items, list) else ""


def _listed(studies: list[StudyInput], rows: dict[str, LedgerRow], key: str) -> list[list[str]]:
    """Each done study's ``warnings`` or ``notes`` list from the ledger (the page lists them one by one)."""
    out: list[list[str]] = []
    for s in studies:
        r = rows.get(s.study_id)
        items = r.outputs.get(key) if r is not None and r.state is StudyState.DONE else None
        out.append([str(i) for i in items] if isinstance(items, list) else [])
    return out


def studies_table(
    studies: list[StudyInput],
    rows: dict[str, LedgerRow],
    smoke: bool = False,
    config: CohortConfig | None = None,
) -> pd.DataFrame:
    """One row per study of the cohort (ledger state; ``pending`` when not reached or not finished).

    ``warnings`` of a done study: the series fallback and the loader's geometry warnings (missing
    slices, irregular spacing, duplicates, ...); ``notes``: asked outputs that do not apply to its
    source (``dicom-seg: not applicable: ...``). ``smoke_run`` is true on every row of a run with
    random weights (scores are meaningless). With ``config.output.flag`` the table also has
    ``p_value`` and ``flagged`` (:func:`medzsad.calibration.operating_point.flag_columns`).
    """
    records = []
    for s in studies:
        r = rows.get(s.study_id)
        out = r.outputs if r is not None else {}
        # tables are written when no study runs: a row left ``running`` (a Ctrl-C, a run stopped
        # after a failure) did not finish, and the next run picks it up
        state = StudyState.PENDING.value
        if r is not None and r.state is not StudyState.RUNNING:
            state = r.state.value
        done = state == StudyState.DONE.value
        records.append(
            {
                "study_id": s.study_id,
                "safe_id": r.safe_id if r is not None else "",
                "source": s.source,
                "series_uid": out.get("series_uid", ""),
                "series_description": out.get("series_description", ""),
                "modality": out.get("modality", ""),
                "slices": out.get("slices", np.nan),
                "scored_slices": out.get("scored_slices", np.nan),
                "score": out.get("score", np.nan) if done else np.nan,
                "rank": np.nan,
                "lesion_count": out.get("lesion_count", np.nan) if done else np.nan,
                "lesion_volume_ml": out.get("lesion_volume_ml", np.nan) if done else np.nan,
                "label": "" if s.label is None else s.label,
                "status": state,
                "error": r.error if r is not None else "",
                "output_errors": "; ".join(
                    f"{f.get('output', '')}: {f.get('error_type', '')}" for f in output_failures(r)
                ),
                "warnings": _cell(out.get("warnings")) if done else "",
                "notes": _cell(out.get("notes")) if done else "",
                "smoke_run": smoke,
            }
        )
    table = pd.DataFrame(records, columns=STUDY_COLUMNS)
    done = table["status"] == StudyState.DONE.value
    order = table[done].sort_values(["score", "study_id"], ascending=[False, True], kind="stable").index
    table.loc[order, "rank"] = np.arange(1, len(order) + 1)
    for col in ("slices", "scored_slices", "rank", "lesion_count"):
        table[col] = table[col].astype("Int64")
    if config is not None and config.output.flag is not None:
        table = flag_columns(table, rows, config)
    return table


def errors_table(studies: list[StudyInput], rows: dict[str, LedgerRow]) -> pd.DataFrame:
    """One row per failed study and per failed optional output of a done study.

    Columns: stage, the optional output's name (empty for a failed study), exception type and
    one-line message.
    """
    records = []
    for s in studies:
        r = rows.get(s.study_id)
        if r is not None and r.state is StudyState.FAILED:
            records.append(
                {
                    "study_id": s.study_id,
                    "source": s.source,
                    "stage": r.outputs.get("stage", ""),
                    "output": "",
                    "error_type": r.outputs.get("error_type", ""),
                    "message": r.error,
                }
            )
        for f in output_failures(r):
            records.append(
                {
                    "study_id": s.study_id,
                    "source": s.source,
                    "stage": OUTPUT_STAGE,
                    "output": f.get("output", ""),
                    "error_type": f.get("error_type", ""),
                    "message": f.get("message", ""),
                }
            )
    return pd.DataFrame(records, columns=ERROR_COLUMNS)


def write_cohort_tables(
    out_dir: Path,
    studies: list[StudyInput],
    rows: dict[str, LedgerRow],
    smoke: bool = False,
    config: CohortConfig | None = None,
) -> tuple[Path, Path]:
    """Write ``studies.csv`` and ``errors.csv`` atomically; returns their paths.

    Text cells are neutralised (:func:`~medzsad.report.cells.safe_frame`): a cell starting with
    ``= + - @`` (or tab/CR) gets a leading ``'`` and NUL bytes are removed; numbers are unchanged.
    """
    return (
        write_csv(out_dir / "studies.csv", safe_frame(studies_table(studies, rows, smoke, config))),
        write_csv(out_dir / "errors.csv", safe_frame(errors_table(studies, rows))),
    )


def replace_push_errors(run_dir: Path, failures: Sequence[PushFailure]) -> Path:
    """Rewrite ``errors.csv`` with the run's current push failures (stage ``push``) after its study errors."""
    path = run_dir / "errors.csv"
    table = pd.DataFrame(columns=ERROR_COLUMNS)
    if path.is_file():
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        table = table[table["stage"] != PUSH_STAGE]
    rows = [
        {
            "study_id": f.study_id,
            "source": f.endpoint,
            "stage": PUSH_STAGE,
            "output": "",
            "error_type": "PacsSendError",
            "message": f.error,
        }
        for f in failures
    ]
    new = pd.DataFrame(rows, columns=ERROR_COLUMNS)
    return write_csv(path, safe_frame(pd.concat([table, new], ignore_index=True)))


def write_review_page(
    out_dir: Path,
    studies: list[StudyInput],
    rows: dict[str, LedgerRow],
    cfg: CohortConfig,
    metrics: Mapping[str, Any] | None,
    model: Mapping[str, Any] | None,
    operating_point: Mapping[str, str],
) -> Path | None:
    """Write ``report.html``; it is optional: a failure is logged and the run's other outputs stand.

    Args:
        out_dir: The run folder.
        studies: The cohort's studies.
        rows: Their ledger rows.
        cfg: The run's cohort.
        metrics: The run's metrics, when labelled.
        model: The built model's description (ledger metadata), ``None`` when none was built.
        operating_point: The run's operating point (threshold and flag texts).
    """
    smoke = cfg.model.is_smoke
    table = safe_frame(studies_table(studies, rows, smoke, cfg), formulas=False)
    page = pd.DataFrame(
        {
            "study_id": table["study_id"],
            "score": pd.to_numeric(table["score"], errors="coerce").astype(float),
            "study_dir": [f"studies/{s}" if s else "" for s in table["safe_id"]],
            "status": ["ok" if st == StudyState.DONE.value else st for st in table["status"]],
            "error": table["error"],
            "lesion_count": table["lesion_count"],
            "lesion_volume_ml": table["lesion_volume_ml"],
            "modality": table["modality"],
            "warnings": _listed(studies, rows, "warnings"),
            "notes": _listed(studies, rows, "notes"),
            **{c: table[c] for c in ("p_value", "flagged") if c in table.columns},
        }
    )
    header = cohort_header(
        cfg.name, smoke=smoke, model=model, operating_point=operating_point, metrics=metrics
    )
    failed: list[OutputFailure] = []
    written = attempt(
        OutputKind.HTML.value,
        lambda: write_report_html(out_dir, page, title=f"medzsad {cfg.name}", header=header),
        failed,
    )
    for f in failed:
        log.warning("review page report.html not written: %s: %s", f.error_type, f.message[:300])
        if cfg.output.show_ids:  # a traceback names files (docs/privacy.md)
            log.debug("traceback of the review page:\n%s", f.traceback.rstrip())
    return written
