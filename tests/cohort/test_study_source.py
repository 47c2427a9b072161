"""studies.csv's ``source`` names each study's own files, also when one input folder holds several."""

from __future__ import annotations

from pathlib import Path

from medzsad.cohort.tables import errors_table, studies_table
from medzsad.study.types import StudyInput


def test_source_is_each_studys_own_folder(tmp_path: Path) -> None:
    export = tmp_path / "export"
    files = {}
    for who in ("patient-a/ct-2024", "patient-b/mr-2023"):
        (export / who / "series1").mkdir(parents=True)
        (export / who / "series2").mkdir()
        files[who] = tuple(str(export / who / s / f"{n}.dcm") for s in ("series1", "series2") for n in (1, 2))
    scan = tmp_path / "head.nii.gz"
    scan.write_bytes(b"")
    archive = export / "mr_study.zip"
    archive.write_bytes(b"")  # an archive member's name counts only when the archive exists
    dicomdir = tmp_path / "cd" / "DICOMDIR"
    studies = [
        StudyInput("patient-a-ct-2024", str(export), files["patient-a/ct-2024"]),
        StudyInput("patient-b-mr-2023", str(export), files["patient-b/mr-2023"]),
        StudyInput("head", str(scan)),  # a file: its path
        StudyInput("export-448cb96299", str(export), (f"{archive}!/MR/1.dcm", f"{archive}!/MR/2.dcm")),
        StudyInput(
            "cd-1",
            str(dicomdir),
            (str(tmp_path / "cd/PT0/ST0/SE0/IM0"), str(tmp_path / "cd/PT0/ST0/SE1/IM0")),
        ),
        StudyInput("pacs", "pacs-cache/1.2.3", error="the PACS refused"),  # nothing pulled: its path
    ]
    table = studies_table(studies, {})
    assert list(table["source"]) == [
        str(export / "patient-a" / "ct-2024"),
        str(export / "patient-b" / "mr-2023"),
        str(scan),
        str(archive),
        str(tmp_path / "cd" / "PT0" / "ST0"),
        "pacs-cache/1.2.3",
    ]
    assert list(table["status"]) == ["pending"] * 6
    assert errors_table(studies, {}).empty
