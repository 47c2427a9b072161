"""CSV formula injection and NUL bytes (issue 16): text neutralised, numbers unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medzsad.fileio import write_csv
from medzsad.report.cells import safe_cell, safe_frame


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\r=1", "'\r=1"),
        ("a\x00b", "ab"),
        ("\x00=1", "'=1"),
        ("plain", "plain"),
        ("", ""),
        (-0.5, -0.5),
        (3, 3),
        (None, None),
    ],
)
def test_safe_cell(value: object, expected: object) -> None:
    assert safe_cell(value) == expected


def test_safe_frame_keeps_numbers_and_round_trips(tmp_path) -> None:
    table = pd.DataFrame(
        {
            "study_id": ["=cmd|'/C calc'!A0", "ok", "@x"],
            "score": [-0.25, 0.5, np.nan],
            "rank": pd.array([1, 2, None], dtype="Int64"),
            "label": [1, "", 0],
            "series_description": ["-AX T1", "nul\x00here", "+C"],
        }
    )
    p = write_csv(tmp_path / "t.csv", safe_frame(table))
    back = pd.read_csv(p, keep_default_na=False, dtype=str)
    assert list(back["study_id"]) == ["'=cmd|'/C calc'!A0", "ok", "'@x"]
    assert list(back["series_description"]) == ["'-AX T1", "nulhere", "'+C"]
    assert list(back["score"]) == ["-0.25", "0.5", ""]  # a negative number is not prefixed
    assert list(back["rank"]) == ["1", "2", ""]
    assert b"\x00" not in p.read_bytes()
    assert list(table["study_id"])[0].startswith("=")  # the input table is not modified
