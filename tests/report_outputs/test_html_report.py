"""The static cohort review page: ranking, overlays, lesion tables, relative links, escaping."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest

from medzsad.errors import OutputError
from medzsad.report.html_report import write_report_html


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("href", "src") and value and not value.startswith("#"):
                self.refs.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _study(root: Path, name: str, n_lesions: int) -> Path:
    d = root / "studies" / name
    (d / "overlay").mkdir(parents=True)
    (d / "dicom").mkdir()
    (d / "overlay" / "slice_003.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (d / "heatmap.nii.gz").write_bytes(b"x")
    (d / "dicom" / "anomaly_seg.dcm").write_bytes(b"x")
    pd.DataFrame(
        {"lesion": range(1, n_lesions + 1), "peak_heat": np.linspace(0.9, 0.6, n_lesions), "volume_ml": 1.5}
    ).to_csv(d / "lesions.csv", index=False)
    return d


def test_ranked_page_with_working_relative_links(tmp_path: Path) -> None:
    _study(tmp_path, "s1", 1)
    _study(tmp_path, "s2", 3)
    table = pd.DataFrame(
        {
            "study_id": ["s1", "s2", "s3 <b>bad</b>"],
            "score": [0.4, 0.9, np.nan],
            "study_dir": ["studies/s1", str(tmp_path / "studies" / "s2"), "studies/s3"],
            "status": ["ok", "ok", "failed"],
            "error": ["", "", "unreadable series"],
        }
    )
    page = write_report_html(tmp_path, table, title="cohort A")
    text = page.read_text()
    parser = _Collect()
    parser.feed(text)
    body = "".join(parser.text)
    # ranked by score; the failed study is listed apart, not ranked
    assert "1. s2" in body and "2. s1" in body and "3. s3" not in body
    assert "Studies not scored (1)" in body and "s3 <b>bad</b>" in body
    assert "<b>bad</b>" not in text  # escaped
    assert "unreadable series" in body
    # every link and image resolves from the page's folder, and none is absolute or remote
    assert parser.refs
    for ref in parser.refs:
        assert not re.match(r"^[a-z]+:|^/", ref), ref
        assert (tmp_path / unquote(ref)).is_file(), ref
    assert sum(r.endswith(".png") for r in parser.refs) == 2 * 2  # <a> and <img> per overlay
    assert any(r.endswith("dicom/anomaly_seg.dcm") for r in parser.refs)
    assert "Volume (mL)" in body and "1.50" in body  # lesion table rendered with titles and units


def test_missing_columns_are_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="study_dir"):
        write_report_html(tmp_path, pd.DataFrame({"study_id": ["a"], "score": [1.0]}))


def test_one_broken_study_part_does_not_cost_the_page(tmp_path: Path) -> None:
    _study(tmp_path, "good", 2)
    _study(tmp_path, "odd", 1)
    table = pd.DataFrame(
        {
            "study_id": ["good", "odd"],
            "score": [0.9, 0.5],
            "study_dir": ["studies/good", "studies/odd"],
            "overlays": [None, [5]],  # not a path: listing this study's files raises TypeError
        }
    )
    body = "".join(_collect(write_report_html(tmp_path, table).read_text()).text)
    assert "1. good" in body and "Volume (mL)" in body  # the healthy study keeps its part
    # the broken one is listed apart with the reason, not ranked
    assert "2. odd" not in body and "Studies not scored (1)" in body
    assert "could not be listed (TypeError" in body


def _collect(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    return parser
