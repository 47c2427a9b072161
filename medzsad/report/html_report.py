"""Static review page per cohort: ``<cohort_out_dir>/report.html``, rendered with Jinja2.

The header says what ran (model, weights, operating point and where it comes from, date, counts,
metrics) and carries a SMOKE RUN banner for random weights. Scored studies are ranked by score in a
table that sorts by any column (a few lines of inline script; no CDN, no server); studies that were
not scored are listed apart, unranked. Each scored study has a section with its overlays (full
width, click to enlarge), its lesions (human column names with units, rounded) and links to its
files. All links are relative to the cohort folder, so the folder can be moved or zipped whole.

Per-study files are found in the study folder by convention unless the table names them:
overlays are ``**/*.png``, the lesion table is ``lesions.csv`` (else the first ``*lesion*.csv``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

import medzsad
from medzsad.errors import OutputError
from medzsad.fileio import write_text
from medzsad.report.review_header import CohortHeader

__all__ = ["write_report_html", "render_report_html", "REPORT_NAME", "LINK_PATTERNS", "LESION_DISPLAY"]

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
_STUDY_COLUMNS = ("Rank", "Study", "Score", "Lesions", "Lesion volume (mL)", "Modality", "Warnings")
#: Added when the run flags studies against a site profile (output.flag).
_FLAG_COLUMNS = ("p-value", "Flagged")

#: lesions.csv column -> (title on the page, decimals); ``{unit}`` is the intensity unit (HU for CT).
#: Columns not listed (LPS centre, bounding box, voxels) stay in the CSV only.
LESION_DISPLAY: dict[str, tuple[str, int]] = {
    "component": ("Lesion", 0),
    "volume_ml": ("Volume (mL)", 2),
    "max_score": ("Peak heat (0-1)", 3),
    "mean_score": ("Mean heat (0-1)", 3),
    "centroid_r_mm": ("Centre R (mm)", 1),
    "centroid_a_mm": ("Centre A (mm)", 1),
    "centroid_s_mm": ("Centre S (mm)", 1),
    "intensity_mean": ("Mean ({unit})", 1),
    "intensity_min": ("Min ({unit})", 1),
    "intensity_max": ("Max ({unit})", 1),
}
_METRIC_NAMES = {
    "study_auroc": "Study AUROC",
    "study_ap": "Study AP",
    "voxel_auroc": "Voxel AUROC",
    "aupro": "AUPRO",
    "dice": "Dice",
    "n_labelled": "Labelled studies",
    "n_mask_studies": "Studies with masks",
}

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("medzsad.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class _Lesions:
    columns: list[str]
    rows: list[list[str]]
    more: int


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _fmt(value: object, decimals: int = 3) -> str:
    v = _number(value)
    if math.isnan(v):
        return "" if value is None or isinstance(value, float) else str(value)
    return f"{v:.{decimals}f}" if decimals > 0 else f"{v:.0f}"


def _read_lesions(folder: Path, explicit: object) -> pd.DataFrame | None:
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


def _lesions_view(frame: pd.DataFrame, max_rows: int) -> _Lesions:
    """Known columns with titles, units and rounding; an unknown table is shown as it is."""
    unit = str(frame["intensity_unit"].iloc[0]) if "intensity_unit" in frame and len(frame) else ""
    known = [c for c in LESION_DISPLAY if c in frame.columns]
    if not known:
        cols = [c for c in frame.columns]
        titles = [str(c).replace("_", " ") for c in cols]
        spec = [(c, 3) for c in cols]
    else:
        spec = [(c, LESION_DISPLAY[c][1]) for c in known]
        titles = [LESION_DISPLAY[c][0].format(unit=unit or "scanner units") for c in known]
    rows = [[_fmt(r[c], d) for c, d in spec] for _, r in frame.head(max_rows).iterrows()]
    return _Lesions(titles, rows, max(0, len(frame) - max_rows))


def _texts(cell: object) -> list[str]:
    """A cell of texts (warnings, notes): a list, or one text."""
    if isinstance(cell, list | tuple):
        return [str(c) for c in cell if str(c)]
    return [cell] if isinstance(cell, str) and cell else []


def _study(row: pd.Series, base: Path, max_rows: int) -> dict[str, Any]:
    folder = Path(str(row["study_dir"]))
    folder = folder if folder.is_absolute() else base / folder
    overlays = row.get("overlays")
    if isinstance(overlays, list | tuple):
        pngs = [Path(p) if Path(p).is_absolute() else folder / p for p in overlays]
    else:
        pngs = sorted(folder.rglob("*.png")) if folder.is_dir() else []
    links = sorted({p for pat in LINK_PATTERNS for p in folder.glob(pat) if p.is_file()})
    lesions = _read_lesions(folder, row.get("lesions_csv")) if folder.is_dir() else None
    score = _number(row["score"])
    n_lesions = _number(row.get("lesion_count", len(lesions) if lesions is not None else math.nan))
    lesion_ml = _number(row.get("lesion_volume_ml"))
    if math.isnan(lesion_ml) and lesions is not None and "volume_ml" in lesions:
        lesion_ml = float(lesions["volume_ml"].sum())
    return {
        "study_id": str(row["study_id"]),
        "status": str(row.get("status", "ok") or "ok"),
        "error": str(row.get("error", "") or ""),
        "score": _fmt(score, 4),
        "score_value": "" if math.isnan(score) else repr(score),
        "n_lesions": _fmt(n_lesions, 0),
        "n_lesions_value": "" if math.isnan(n_lesions) else repr(n_lesions),
        "lesion_ml": _fmt(lesion_ml, 2),
        "lesion_ml_value": "" if math.isnan(lesion_ml) else repr(lesion_ml),
        "modality": str(row.get("modality", "") or ""),
        "warnings": _texts(row.get("warnings")),
        "notes": _texts(row.get("notes")),
        **_flag_cells(row),
        "overlays": [{"href": _rel(p, base), "name": p.stem} for p in pngs],
        "lesions": _lesions_view(lesions, max_rows) if lesions is not None else None,
        "links": [{"href": _rel(p, base), "name": _rel(p, folder)} for p in links],
        "_score": score,
    }


def _flag_cells(row: pd.Series) -> dict[str, str]:
    """The study's conformal p-value and flag (``output.flag``), as shown and as sorted."""
    p = _number(row.get("p_value"))
    flagged = row.get("flagged")
    known = not pd.isna(flagged) if flagged is not None else False
    return {
        "p_value": _fmt(p, 4),
        "p_value_value": "" if math.isnan(p) else repr(p),
        "flagged": ("yes" if bool(flagged) else "no") if known else "",
    }


def _study_or_note(row: pd.Series, base: Path, max_rows: int) -> dict[str, Any]:
    """:func:`_study`, or a failed entry saying why when gathering the study's files fails.

    One study's broken part never costs the page (optional outputs fail on their own).
    """
    try:
        return _study(row, base, max_rows)
    except Exception as e:  # a per-study part of an optional output; recorded on the page
        logger.warning("review page: part of one study left out (%s)", type(e).__name__)
        return {
            "study_id": str(row.get("study_id", "")),
            "status": "failed",
            "error": f"review page: this study's files could not be listed ({type(e).__name__}: {e})",
            "score": "",
            "score_value": "",
            "n_lesions": "",
            "n_lesions_value": "",
            "lesion_ml": "",
            "lesion_ml_value": "",
            "modality": "",
            "warnings": [],
            "notes": [],
            "p_value": "",
            "p_value_value": "",
            "flagged": "",
            "overlays": [],
            "lesions": None,
            "links": [],
            "_score": math.nan,
        }


def _metrics(metrics: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for key, name in _METRIC_NAMES.items():
        if key in metrics and metrics[key] is not None:
            decimals = 0 if key.startswith("n_") else 3
            out.append({"name": name, "value": _fmt(metrics[key], decimals)})
    return out


def render_report_html(
    cohort_out_dir: str | Path,
    studies_table: pd.DataFrame,
    *,
    title: str = "medzsad review",
    max_lesion_rows: int = 20,
    header: CohortHeader | None = None,
) -> str:
    """The page text of :func:`write_report_html` (same arguments)."""
    base = Path(cohort_out_dir)
    missing = [c for c in _REQUIRED if c not in studies_table.columns]
    if missing:
        raise OutputError(
            f"{base / REPORT_NAME}: studies table lacks columns {missing} "
            f"(has {list(studies_table.columns)}); expected {list(_REQUIRED)}"
        )
    studies = [_study_or_note(row, base, max_lesion_rows) for _, row in studies_table.iterrows()]
    ranked = [s for s in studies if s["status"] == "ok"]
    ranked.sort(key=lambda s: -s["_score"] if not math.isnan(s["_score"]) else math.inf)
    for i, s in enumerate(ranked, start=1):
        s["rank"], s["anchor"] = i, f"study-{i}"
    failed = [s for s in studies if s["status"] not in ("ok", "pending", "skipped")]
    header = header or CohortHeader(name=title)
    counts = {
        "total": len(studies),
        "scored": len(ranked),
        "failed": len(failed),
        "other": len(studies) - len(ranked) - len(failed),
    }
    return _ENV.get_template("report.html.j2").render(
        title=title,
        version=medzsad.__version__,
        header=header,
        created=header.created or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        counts=counts,
        metrics=_metrics(dict(header.metrics)),
        study_columns=_STUDY_COLUMNS + (_FLAG_COLUMNS if "p_value" in studies_table.columns else ()),
        flags="p_value" in studies_table.columns,
        ranked=ranked,
        failed=failed,
    )


def write_report_html(
    cohort_out_dir: str | Path,
    studies_table: pd.DataFrame,
    *,
    title: str = "medzsad review",
    max_lesion_rows: int = 20,
    header: CohortHeader | None = None,
) -> Path:
    """Write ``<cohort_out_dir>/report.html``.

    Args:
        cohort_out_dir: The cohort output folder (links are relative to it).
        studies_table: One row per study with columns ``study_id``, ``score`` (float, NaN when
            unscored) and ``study_dir`` (absolute or relative to ``cohort_out_dir``); optional
            ``status`` (``"ok"``, ``"failed"``, ``"pending"``), ``error``, ``overlays`` (list of
            PNG paths), ``lesions_csv``, ``lesion_count``, ``lesion_volume_ml``, ``modality``,
            ``warnings`` (how the study was read: gaps, irregular spacing, a series fallback) and
            ``notes`` (outputs not applicable to the source), each a list of texts or one text.
        title: Page title (the cohort name).
        max_lesion_rows: Lesion rows shown per study (the CSV link has all).
        header: Model, weights, operating point, date, smoke flag and metrics of the run.

    Returns:
        The written page.

    Raises:
        OutputError: A required column is missing or the page cannot be written.
    """
    base = Path(cohort_out_dir)
    page = render_report_html(
        base, studies_table, title=title, max_lesion_rows=max_lesion_rows, header=header
    )
    base.mkdir(parents=True, exist_ok=True)
    return write_text(base / REPORT_NAME, page)
