"""Issue 22 item 4: a zip or DICOMDIR holding several studies is expanded like a folder, ids unique.

Real media: pydicom's ``dicomdirtests`` set (a DICOMDIR over 6 studies of CT, CR and MR files).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from real_studies import DICOMDIR_SETS, ct5n, mr700, new_study_uid, restamp
from tiny_model import TINY_MODEL

from medzsad.cli import main
from medzsad.cohort.inputs import collect_studies
from medzsad.config import PipelineConfig, load_cohort
from medzsad.io.discovery import discover
from medzsad.study.reading import read_study


def _cohort(tmp_path: Path, *paths: Path) -> Path:
    listed = "".join(f"    - {p}\n" for p in paths)
    cfg = tmp_path / "cohort.yaml"
    out = tmp_path / "out"
    cfg.write_text(f"name: media\ninputs:\n  paths:\n{listed}{TINY_MODEL}output:\n  dir: {out}\n")
    return cfg


def _medium(tmp_path: Path, name: str) -> Path:
    """A copy of pydicom's DICOMDIR media in ``<tmp>/<name>/``."""
    shutil.copytree(DICOMDIR_SETS, tmp_path / name, ignore=shutil.ignore_patterns("TINY_ALPHA", "DICOMDIR-*"))
    return tmp_path / name / "DICOMDIR"


def test_two_dicomdirs_in_one_cohort_give_every_study_a_unique_id(tmp_path: Path) -> None:
    cd1, cd2 = _medium(tmp_path, "cd1"), _medium(tmp_path, "cd2")
    n_studies = len(discover(cd1).studies)
    assert n_studies == 6
    studies = collect_studies(load_cohort(_cohort(tmp_path, cd1, cd2)))
    ids = [s.study_id for s in studies]
    assert len(ids) == len(set(ids)) == 2 * n_studies
    assert all(i.startswith(("cd1-", "cd2-")) for i in ids)
    assert all(s.path in (str(cd1), str(cd2)) and s.study_uid and s.files for s in studies)
    # each one reads its own study from the shared DICOMDIR (the 5-slice CT is there)
    ct = next(s for s in studies if any("CT5N" in f for f in s.files) and s.path == str(cd1))
    read = read_study(ct, PipelineConfig())
    assert read.volume.shape_ijk == (16, 16, 5) and read.preset.name == "ct-abdomen"


def test_a_zip_of_two_studies_runs_each(tmp_path: Path) -> None:
    export = tmp_path / "export"
    for f in ct5n():
        restamp(f, export / "a" / f.name, "1.2.826.0.1.3680043.8.498.221")
    other_uid = new_study_uid()
    for f in mr700():  # MIP projections: mixed orientations, refused by its own study only
        restamp(f, export / "b" / f.name, other_uid)
    archive = tmp_path / "pacs_export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(export.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(export).as_posix())
    studies = collect_studies(load_cohort(_cohort(tmp_path, archive)))
    assert len(studies) == 2 and all(s.study_id.startswith("pacs_export-") for s in studies)
    reads = {}
    for s in studies:
        try:
            reads[s.study_uid] = read_study(s, PipelineConfig()).volume.shape_ijk
        except Exception as e:  # noqa: BLE001 - the refused study's reason is checked below
            reads[s.study_uid] = str(e)
    assert reads["1.2.826.0.1.3680043.8.498.221"] == (16, 16, 5)
    (other,) = [v for k, v in reads.items() if k != "1.2.826.0.1.3680043.8.498.221"]
    assert "different orientations" in str(other)


def test_run_dry_run_lists_every_study_of_a_dicomdir(tmp_path: Path, capsys) -> None:
    cd = _medium(tmp_path, "cdrom")
    assert main(["run", "-i", str(cd), "-o", str(tmp_path / "out"), "--smoke", "--dry-run"]) == 0
    assert capsys.readouterr().out.count("would-run") == 6
