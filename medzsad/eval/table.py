"""Per-class metrics tables laid out like the AnomalyCLIP paper's (one row per class plus the mean)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medzsad.fileio import ensure_dir, write_text

__all__ = ["MetricsRow", "MetricsTable", "COLUMN_TITLES"]

#: Human titles of the metric keys used in tables.
COLUMN_TITLES: dict[str, str] = {
    "image_auroc": "image AUROC",
    "image_ap": "image AP",
    "image_f1_max": "image F1-max",
    "pixel_auroc": "pixel AUROC",
    "pixel_aupro": "pixel AUPRO",
    "pixel_f1_max": "pixel F1-max",
    "dice": "Dice",
    "iou": "IoU",
}


@dataclass(frozen=True)
class MetricsRow:
    """One row of a metrics table.

    Attributes:
        name: class (object) name, e.g. ``"brain"``.
        values: metric key -> value in [0, 1] (``nan`` where undefined).
        n_images: number of images of the class.
        n_anomalous: number of anomalous images of the class.
    """

    name: str
    values: Mapping[str, float]
    n_images: int = 0
    n_anomalous: int = 0


@dataclass(frozen=True)
class MetricsTable:
    """Metrics per class and their mean over classes, as the paper reports them.

    Attributes:
        columns: metric keys in display order (see :data:`COLUMN_TITLES`).
        rows: one row per class.
        extras: other named values to keep with the table (thresholds, operating point).
    """

    columns: tuple[str, ...]
    rows: tuple[MetricsRow, ...]
    extras: Mapping[str, float] = field(default_factory=dict)

    def mean(self) -> dict[str, float]:
        """Mean of each column over the classes where it is defined (``nan`` if none)."""
        out: dict[str, float] = {}
        for c in self.columns:
            vals = [r.values.get(c, math.nan) for r in self.rows]
            finite = [v for v in vals if not math.isnan(v)]
            out[c] = float(np.mean(finite)) if finite else math.nan
        return out

    def value(self, row: str, column: str) -> float:
        """Value of ``column`` for the class ``row`` (or ``"mean"``)."""
        if row == "mean":
            return self.mean()[column]
        for r in self.rows:
            if r.name == row:
                return float(r.values.get(column, math.nan))
        raise KeyError(f"no row {row!r}; rows are {[r.name for r in self.rows]}")

    def _all_rows(self) -> list[tuple[str, Mapping[str, float], int, int]]:
        rows = [(r.name, r.values, r.n_images, r.n_anomalous) for r in self.rows]
        if len(self.rows) > 1:
            rows.append(
                (
                    "mean",
                    self.mean(),
                    sum(r.n_images for r in self.rows),
                    sum(r.n_anomalous for r in self.rows),
                )
            )
        return rows

    def to_markdown(self, scale: float = 100.0, decimals: int = 1) -> str:
        """Render as a Markdown pipe table, values times ``scale`` with ``decimals`` (paper style).

        Undefined values print as ``n/a``.
        """
        head = ["class", "images", "anomalous"] + [COLUMN_TITLES.get(c, c) for c in self.columns]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, values, n, n_anom in self._all_rows():
            cells = [name, str(n), str(n_anom)]
            cells += [_fmt(values.get(c, math.nan), scale, decimals) for c in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_csv_text(self, smoke: bool | None = None) -> str:
        """Render as CSV with unscaled values in [0, 1] and full precision (empty where undefined).

        Args:
            smoke: When given, a last column ``smoke_run`` (``True`` on every row for results of
                random weights, as in ``run``'s tables).
        """
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        flag = [] if smoke is None else [str(bool(smoke))]
        w.writerow(["class", "n_images", "n_anomalous", *self.columns, *(["smoke_run"] if flag else [])])
        for name, values, n, n_anom in self._all_rows():
            vals = [values.get(c, math.nan) for c in self.columns]
            w.writerow([name, n, n_anom, *("" if math.isnan(v) else repr(float(v)) for v in vals), *flag])
        return buf.getvalue()

    def to_csv(self, path: Path, smoke: bool | None = None) -> None:
        """Write :meth:`to_csv_text` to ``path`` atomically."""
        ensure_dir(Path(path).parent)
        write_text(path, self.to_csv_text(smoke))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict: columns, rows (with counts), mean and extras."""
        return {
            "columns": list(self.columns),
            "rows": [
                {"class": r.name, "n_images": r.n_images, "n_anomalous": r.n_anomalous, **_clean(r.values)}
                for r in self.rows
            ],
            "mean": _clean(self.mean()),
            "extras": _clean(self.extras),
        }

    @classmethod
    def from_rows(cls, columns: Sequence[str], rows: Sequence[MetricsRow]) -> MetricsTable:
        """Build a table, keeping the given column order."""
        return cls(tuple(columns), tuple(rows))


def _fmt(v: float, scale: float, decimals: int) -> str:
    return "n/a" if math.isnan(v) else f"{v * scale:.{decimals}f}"


def _clean(values: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}
