"""Static review page per cohort: ``<cohort_out_dir>/report.html``.

Studies are ranked by score (highest first; failed or unscored studies last). Each study has a
section with its overlay PNGs, its lesion table and links to its files (NIfTI, DICOM SEG, Slicer
bundle and loader script, CSV/JSON). All links are relative to the cohort folder and there is no
script, server or external resource, so the page opens from the file system and the folder can be
moved or zipped as a whole.

Per-study files are found in the study folder by convention unless the table names them:
overlays are ``**/*.png``, the lesion table is ``lesions.csv`` (else the first ``*lesion*.csv``).
"""

from __future__ import annotations

import html
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import medzsad
from medzsad.errors import OutputError
from medzsad.fileio import write_text

__all__ = ["write_report_html", "REPORT_NAME", "LINK_PATTERNS"]

logger = logging.getLogger(__name__)

REPORT_NAME = "report.html"
#: Glob patterns (relative to a study folder) of the files linked from the page.
LINK_PATTERNS = (
    "*.nii.gz",
    "*.nii",
    "*.csv",
    "*.json",
    "dicom/*.dcm",
    "slicer/load_in_slicer.py",
    "slicer/*.seg.nrrd",
    "slicer/*.nii.gz",
)
_REQUIRED = ("study_id", "score", "study_dir")

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left}
th{background:#eee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
section{border-top:2px solid #999;margin-top:2em;padding-top:.5em}
.overlays img{max-height:256px;margin:.2em;border:1px solid #ccc}
.failed{color:#a00}
"""


@dataclass(frozen=True)
class _Study:
    study_id: str
    score: float
    status: str
    error: str
    folder: Path
    overlays: list[Path]
    lesions: pd.DataFrame | None
    links: list[Path]


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def _score(value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v


def _lesions(folder: Path, explicit: object) -> pd.DataFrame | None:
    path: Path | None = None
    if isinstance(explicit, str | os.PathLike) and str(explicit):
        path = Path(explicit)
    elif (folder / "lesions.csv").is_file():
        path = folder / "lesions.csv"
    else:
        path = next(iter(sorted(folder.glob("*lesion*.csv"))), None)
    if path is None or not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as e:
        logger.warning("lesion table %s unreadable (%s); left out of the review page", path.name, e)
        return None


def _study(row: pd.Series, base: Path) -> _Study:
    folder = Path(str(row["study_dir"]))
    folder = folder if folder.is_absolute() else base / folder
    overlays = row.get("overlays")
    if isinstance(overlays, list | tuple):
        pngs = [Path(p) if Path(p).is_absolute() else folder / p for p in overlays]
    else:
        pngs = sorted(folder.rglob("*.png")) if folder.is_dir() else []
    links = sorted({p for pat in LINK_PATTERNS for p in folder.glob(pat) if p.is_file()})
    return _Study(
        study_id=str(row["study_id"]),
        score=_score(row["score"]),
        status=str(row.get("status", "ok") or "ok"),
        error=str(row.get("error", "") or ""),
        folder=folder,
        overlays=pngs,
        lesions=_lesions(folder, row.get("lesions_csv")) if folder.is_dir() else None,
        links=links,
    )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _table(frame: pd.DataFrame, max_rows: int) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, r in frame.head(max_rows).iterrows():
        cells = "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.tolist())
        rows.append(f"<tr>{cells}</tr>")
    more = f"<p>{len(frame) - max_rows} more rows in the CSV.</p>" if len(frame) > max_rows else ""
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def _anchor(i: int) -> str:
    return f"study-{i + 1}"


def _ranking(studies: list[_Study]) -> str:
    rows = []
    for i, s in enumerate(studies):
        n = "" if s.lesions is None else str(len(s.lesions))
        cls = ' class="failed"' if s.status != "ok" else ""
        link = f'<a href="#{_anchor(i)}">{html.escape(s.study_id)}</a>'
        rows.append(
            f"<tr{cls}><td class=num>{i + 1}</td><td>{link}</td><td class=num>{_fmt(s.score)}</td>"
            f"<td>{html.escape(s.status)}</td><td class=num>{n}</td></tr>"
        )
    head = "<tr><th>rank</th><th>study</th><th>score</th><th>status</th><th>lesions</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _section(i: int, s: _Study, base: Path, max_rows: int) -> str:
    parts = [f'<section id="{_anchor(i)}"><h2>{i + 1}. {html.escape(s.study_id)}</h2>']
    parts.append(f"<p>score {_fmt(s.score)} &middot; status {html.escape(s.status)}</p>")
    if s.error:
        parts.append(f'<p class="failed">{html.escape(s.error)}</p>')
    if s.overlays:
        imgs = "".join(
            f'<a href="{html.escape(_rel(p, base))}"><img src="{html.escape(_rel(p, base))}" '
            f'alt="{html.escape(p.name)}" loading="lazy"></a>'
            for p in s.overlays
        )
        parts.append(f'<div class="overlays">{imgs}</div>')
    if s.lesions is not None:
        parts.append("<h3>Lesions</h3>" + (_table(s.lesions, max_rows) if len(s.lesions) else "<p>none</p>"))
    if s.links:
        items = "".join(
            f'<li><a href="{html.escape(_rel(p, base))}">{html.escape(_rel(p, s.folder))}</a></li>'
            for p in s.links
        )
        parts.append(f"<h3>Files</h3><ul>{items}</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def write_report_html(
    cohort_out_dir: str | Path,
    studies_table: pd.DataFrame,
    *,
    title: str = "medzsad review",
    max_lesion_rows: int = 20,
) -> Path:
    """Write ``<cohort_out_dir>/report.html``.

    Args:
        cohort_out_dir: The cohort output folder (links are relative to it).
        studies_table: One row per study with columns ``study_id``, ``score`` (float, NaN when
            unscored) and ``study_dir`` (absolute or relative to ``cohort_out_dir``); optional
            ``status`` (``"ok"`` or e.g. ``"failed"``), ``error``, ``overlays`` (list of PNG paths)
            and ``lesions_csv``.
        title: Page title (the cohort name).
        max_lesion_rows: Lesion rows shown per study (the CSV link has all).

    Returns:
        The written page.

    Raises:
        OutputError: A required column is missing or the page cannot be written.
    """
    base = Path(cohort_out_dir)
    missing = [c for c in _REQUIRED if c not in studies_table.columns]
    if missing:
        raise OutputError(
            f"{base / REPORT_NAME}: studies table lacks columns {missing} "
            f"(has {list(studies_table.columns)}); expected {list(_REQUIRED)}"
        )
    studies = [_study(row, base) for _, row in studies_table.iterrows()]
    studies.sort(key=lambda s: (s.status != "ok", -s.score if not math.isnan(s.score) else math.inf))
    failed = sum(s.status != "ok" for s in studies)
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(studies)} studies, {failed} not scored. medzsad {html.escape(medzsad.__version__)}. "
        "Research use only; not for diagnosis.</p>",
        _ranking(studies),
        *(_section(i, s, base, max_lesion_rows) for i, s in enumerate(studies)),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    base.mkdir(parents=True, exist_ok=True)
    return write_text(base / REPORT_NAME, page)
