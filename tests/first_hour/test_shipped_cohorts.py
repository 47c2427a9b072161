"""Every cohort in cohorts/ runs with --smoke as a user runs it: from a repository-shaped folder,
with its default output folder (``reports/<name>``, relative to the current directory).

``--smoke`` swaps only the model (tiny random weights); every other setting of the shipped file
(inputs, pipeline, outputs, thresholds, profiles, executor) is exercised as the README's demo and
docs/calibration.md use it: cohorts with a ``profile`` section are built with ``medzsad profile``
first, as the docs say, then every cohort is run. The demo data are written at 4 mm.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medzsad.config import OutputKind, load_cohort
from medzsad.report.review_outputs import PMAP_FILE, SEG_FILE
from medzsad.report.sr_writer import SR_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]
COHORTS = sorted(p.name for p in (REPO_ROOT / "cohorts").glob("*.yaml"))

# output kind -> a file (or folder) it puts in a DICOM study's folder
_STUDY_FILES = {
    OutputKind.HEATMAP: "heatmap.nii.gz",
    OutputKind.MASK: "mask.nii.gz",
    OutputKind.SLICES: "slices.csv",
    OutputKind.LESIONS: "lesions.csv",
    OutputKind.OVERLAY: "overlay.png",
    OutputKind.PROVENANCE: "provenance.json",
    OutputKind.SLICER: "slicer/load_in_slicer.py",
    OutputKind.DICOM_SEG: str(SEG_FILE),
    OutputKind.DICOM_PMAP: str(PMAP_FILE),
    OutputKind.DICOM_SR: str(SR_FILE),
}
_DICOM_ONLY = {OutputKind.DICOM_SEG, OutputKind.DICOM_PMAP, OutputKind.DICOM_SR}


def _medzsad(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medzsad", *args], cwd=root, capture_output=True, text=True, timeout=900
    )


def _doc_commands() -> list[list[str]]:
    """The commands of docs/calibration.md's "Try it on the demo data", as a user types them."""
    doc = (REPO_ROOT / "docs" / "calibration.md").read_text()
    section = doc.split("## Try it on the demo data", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split() for line in section.strip().splitlines()]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository-shaped folder, walked through docs/calibration.md's demo commands."""
    root = tmp_path_factory.mktemp("checkout")
    shutil.copytree(REPO_ROOT / "cohorts", root / "cohorts")
    commands = _doc_commands()
    assert [c[:2] for c in commands] == [["medzsad", "demo-data"], ["medzsad", "profile"], ["medzsad", "run"]]
    for argv in commands:
        extra = ["--resolution", "4"] if argv[1] == "demo-data" else ["-q"]  # small data, quiet
        proc = _medzsad(root, *argv[1:], *extra)
        assert proc.returncode == 0, (argv, proc.stderr[-3000:])
    profiled = [load_cohort(root / "cohorts" / n) for n in COHORTS]
    for config in (c for c in profiled if c.profile is not None):  # every profile cohort was built
        profile = root / "reports" / config.name / "profile"
        assert json.loads((profile / "profile.json").read_text())["smoke_run"] is True
        assert (profile / "calibration.png").stat().st_size > 0
    page = (root / "reports" / "demo-calibrated" / "report.html").read_text()
    assert 'id="flag-rule"' in page and "p-value" in page and "Flagged" in page
    return root


def test_every_shipped_cohort_lists_every_output() -> None:
    """The demo is where a newcomer sees what medzsad writes: it asks for all of it."""
    demo = load_cohort(REPO_ROOT / "cohorts" / "demo.yaml")
    assert set(demo.output.outputs) == set(OutputKind)


@pytest.mark.parametrize("name", COHORTS)
def test_shipped_cohort_runs_with_smoke_from_the_repository(checkout: Path, name: str) -> None:
    config = load_cohort(checkout / "cohorts" / name)
    assert config.output.dir is None  # the default output folder is what the README's users get
    proc = _medzsad(checkout, "run", f"cohorts/{name}", "--smoke", "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = checkout / "reports" / config.name
    studies = pd.read_csv(out / "studies.csv")
    assert len(studies) >= 6 and (studies["status"] == "done").all(), studies.to_string()
    assert studies["smoke_run"].all()
    errors = pd.read_csv(out / "errors.csv")
    assert errors.empty, errors.to_string()
    for row in studies.itertuples():
        folder = out / "studies" / row.study_id
        provenance = json.loads((folder / "provenance.json").read_text())
        dicom = provenance["inputs"]["kind"] == "dicom"
        for kind in config.output.outputs:
            if kind in _STUDY_FILES and (dicom or kind not in _DICOM_ONLY):
                assert (folder / _STUDY_FILES[kind]).exists(), (row.study_id, kind)
        assert provenance["output_failures"] == [], provenance["output_failures"]
        for table in ("slices.csv", "lesions.csv"):  # every output says SMOKE, the tables too
            if (folder / table).exists():
                assert pd.read_csv(folder / table)["smoke_run"].all(), table
    assert studies["modality"].isin(["CT", "MR"]).all()  # NIfTI studies: the modality of their preset
    if OutputKind.HTML in config.output.outputs:
        assert "SMOKE RUN" in (out / "report.html").read_text()
    if config.output.flag is not None:  # calibrated against the profile built above
        assert studies["p_value"].between(0, 1).all() and studies["flagged"].notna().all()


def test_the_shipped_profile_and_its_review_cohort_fit_together() -> None:
    """demo-calibrated names the profile demo-normals builds, and both hash the same model/pipeline."""
    from medzsad.calibration.hashes import model_hash, pipeline_hash
    from medzsad.site_profile.references import with_reference_mode

    normals = with_reference_mode(load_cohort(REPO_ROOT / "cohorts" / "demo-normals.yaml"))
    review = load_cohort(REPO_ROOT / "cohorts" / "demo-calibrated.yaml")
    assert review.output.flag is not None
    named = review.resolve(review.output.flag.profile).resolve()
    assert named == (REPO_ROOT / "reports" / normals.name / "profile").resolve()  # the default folder
    assert model_hash(review) == model_hash(normals)
    assert pipeline_hash(review) == pipeline_hash(normals)
