"""Issue 22 items 1, 2, 3 and 6: what is a candidate, rules that rank, one road for run and inspect.

Studies are built from real files (pydicom's and pydicom-data's) restamped into one
StudyInstanceUID, as a PACS export holds them; ``run``'s reading is
:func:`medzsad.study.reading.read_study` (what each study of ``medzsad run`` goes through) and
``inspect`` is the command itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import SeriesSpec, write_series
from real_studies import ct5n, new_study_uid, real, restamp

from medzsad.cli import main
from medzsad.config import PipelineConfig
from medzsad.errors import InputError
from medzsad.io.discovery import discover
from medzsad.io.readers import load_volume
from medzsad.report.seg_writer import write_dicom_seg, write_heatmap_parametric_map
from medzsad.study.reading import read_study
from medzsad.study.types import StudyInput

LOCALIZER = ["ORIGINAL", "PRIMARY", "LOCALIZER"]


def _inspect(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["inspect", str(path), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _run_read(path: Path, **pipeline: object):
    return read_study(StudyInput("s", str(path)), PipelineConfig(**pipeline))  # type: ignore[arg-type]


@pytest.fixture
def pacs_export(tmp_path: Path) -> tuple[Path, str]:
    """One study as a PACS exports it: a real CT series, a scout, a liver SEG, a secondary capture, an SR."""
    uid = new_study_uid()
    root = tmp_path / "export"
    for f in ct5n():
        restamp(f, root / "ct" / f.name, uid)
    ct_series = str(pydicom.dcmread(root / "ct" / ct5n()[0].name).SeriesInstanceUID)
    restamp(
        real("CT_small.dcm"),
        root / "scout.dcm",
        uid,
        ImageType=LOCALIZER,
        SeriesDescription="Scout",
        SeriesInstanceUID=new_study_uid(),
    )
    restamp(real("liver.dcm"), root / "seg.dcm", uid)  # 3 frames of 1 mm: thinner than the CT
    restamp(real("OT-PAL-8-face.dcm"), root / "capture.dcm", uid)
    restamp(real("test-SR.dcm"), root / "report.dcm", uid)
    return root, ct_series


def test_derived_objects_are_never_candidates_and_inspect_says_why(pacs_export, capsys) -> None:
    root, ct_series = pacs_export
    read = _run_read(root)
    assert read.volume.source.series_uid == ct_series and read.volume.shape_ijk == (16, 16, 5)
    code, report = _inspect(capsys, root)
    assert code == 0
    (study,) = report["studies"]
    assert study["chosen_series"] == ct_series
    by_modality = {s["modality"]: s for s in study["series"]}
    assert not by_modality["SEG"]["candidate"] and not by_modality["SR"]["candidate"]
    reasons = {r["series_uid"]: r["reason"] for r in study["rejected"]}
    seg_uid = str(pydicom.dcmread(root / "seg.dcm").SeriesInstanceUID)
    sr_uid = str(pydicom.dcmread(root / "report.dcm").SeriesInstanceUID)
    assert "Segmentation Storage is a segmentation, not a scan; never scored" in reasons[seg_uid]
    assert "structured report" in reasons[sr_uid]
    assert any("LOCALIZER" in why for why in reasons.values())  # the scout: refused, not ranked


@pytest.mark.parametrize("name", ["liver.dcm", "rtdose.dcm", "rtstruct.dcm", "test-SR.dcm"])
def test_a_folder_of_derived_objects_is_refused_not_scored(tmp_path: Path, capsys, name: str) -> None:
    folder = tmp_path / "only"
    restamp(real(name), folder / name, new_study_uid())
    with pytest.raises(InputError, match="no series can be scored .*never scored"):
        _run_read(folder)
    code, report = _inspect(capsys, folder)
    assert code == 3 and report["studies"][0]["chosen_series"] is None


def test_medzsad_never_analyses_its_own_seg_and_parametric_map(tmp_path: Path, capsys) -> None:
    """After a push and a re-pull the study folder holds the scan and medzsad's own SEG and map."""
    study = tmp_path / "pulled"
    files = [restamp(f, study / f.name, "1.2.826.0.1.3680043.8.498.22") for f in ct5n()]
    volume = load_volume(discover(study).studies[0].series[0])
    mask = np.zeros(volume.shape_ijk, np.uint8)
    mask[4:9, 4:9, 1:4] = 1
    write_dicom_seg(mask, volume, study / "seg.dcm", threshold=0.5)
    write_heatmap_parametric_map(mask.astype(np.float32), volume, study / "pmap.dcm")
    read = _run_read(study)
    assert read.volume.source.series_uid == str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    outputs_only = tmp_path / "outputs"
    outputs_only.mkdir()
    for name in ("seg.dcm", "pmap.dcm"):
        (outputs_only / name).write_bytes((study / name).read_bytes())
    with pytest.raises(InputError, match="written by medzsad"):
        _run_read(outputs_only)
    code, report = _inspect(capsys, outputs_only)
    assert code == 3
    assert all("Manufacturer (0008,0070) 'medzsad'" in r["reason"] for r in report["studies"][0]["rejected"])


def test_the_only_ct_series_coronal_is_scored_and_the_fallback_is_stated(tmp_path: Path, capsys) -> None:
    coronal = SeriesSpec(n_slices=6, iop=(1, 0, 0, 0, 0, -1), description="COR 2mm", series_number=3)
    write_series(tmp_path / "study", coronal)
    read = _run_read(tmp_path / "study")  # ct-abdomen prefers axial: it ranks, it does not refuse
    assert read.volume.source.series_uid == coronal.series_uid
    assert "no axial series; used coronal #3 CT 'COR 2mm'" in read.series.why
    code, report = _inspect(capsys, tmp_path / "study")
    assert code == 0 and report["studies"][0]["fallback"] == "no axial series; used coronal #3 CT 'COR 2mm'"
    # an axial series next to it still wins, and the coronal one is told why it was not chosen
    axial = SeriesSpec(n_slices=6, description="AX 5mm", slice_step=5.0, study_uid=coronal.study_uid, seed=2)
    write_series(tmp_path / "study", axial)
    both = _run_read(tmp_path / "study")
    assert both.volume.source.series_uid == axial.series_uid and "passes all rules" in both.series.why
    _, report = _inspect(capsys, tmp_path / "study")
    (why,) = [r["reason"] for r in report["studies"][0]["rejected"]]
    assert "ranks first by plane (axial preferred)" in why


def test_include_patterns_rank_too(tmp_path: Path) -> None:
    write_series(tmp_path / "s", SeriesSpec(n_slices=6, description="AX SOFT", series_number=2))
    read = _run_read(tmp_path / "s", series={"include": ["BONE"]})
    assert "no series matches include ['BONE']; used #2 CT 'AX SOFT'" in read.series.why


def test_a_single_file_takes_the_folder_road(tmp_path: Path, capsys) -> None:
    """A scout that inspect refuses is refused by run too, and CT_small the same as file and folder."""
    scout = tmp_path / "scout" / "scout.dcm"
    restamp(real("CT_small.dcm"), scout, new_study_uid(), ImageType=LOCALIZER)
    with pytest.raises(InputError, match="LOCALIZER"):
        _run_read(scout)
    code, report = _inspect(capsys, scout)
    assert code == 3 and "LOCALIZER" in report["studies"][0]["rejected"][0]["reason"]
    for path in (real("CT_small.dcm"), tmp_path / "folder"):
        if path.name == "folder":
            restamp(real("CT_small.dcm"), path / "CT_small.dcm", new_study_uid())
        with pytest.raises(InputError, match=r"1 slice\(s\) < min_slices 5"):
            _run_read(path)
    # and a file that is fine as a folder is fine alone, with the same series and geometry
    one = _run_read(real("emri_small.dcm"))
    folder = tmp_path / "emri"
    restamp(real("emri_small.dcm"), folder / "emri.dcm", one.volume.source.study_uid)
    again = _run_read(folder)
    assert one.series.why == again.series.why and one.preset.name == again.preset.name == "mr-brain"
    np.testing.assert_array_equal(one.volume.affine_ras, again.volume.affine_ras)


def test_inspect_and_run_choose_the_same_series_with_the_preset_rules(tmp_path: Path, capsys) -> None:
    """io's default rule prefers the thinnest series; mr-brain prefers most slices: inspect follows run."""
    uid = new_study_uid()
    thin = SeriesSpec(n_slices=5, modality="MR", slice_step=1.0, description="thin", study_uid=uid, seed=1)
    many = SeriesSpec(n_slices=9, modality="MR", slice_step=3.0, description="many", study_uid=uid, seed=2)
    write_series(tmp_path / "s" / "a", thin)
    write_series(tmp_path / "s" / "b", many)
    read = _run_read(tmp_path / "s")
    code, report = _inspect(capsys, tmp_path / "s")
    assert code == 0
    assert report["studies"][0]["chosen_series"] == read.volume.source.series_uid == many.series_uid
    assert report["studies"][0]["preset"] == f"{read.preset.name} (from the headers)"  # run's preset, shown
    _, fixed = _inspect(capsys, tmp_path / "s", "--preset", "ct-head")  # CT rules: every MR refused
    assert fixed["studies"][0]["chosen_series"] is None and fixed["studies"][0]["preset"] == "ct-head (given)"
    with pytest.raises(InputError, match="modality MR not in"):
        _run_read(tmp_path / "s", preset="ct-head")


def test_inspect_exits_non_zero_when_nothing_loads(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    data = real("emri_small.dcm").read_bytes()
    (bad / "cut.dcm").write_bytes(data[: len(data) // 2])  # truncated inside the pixel data
    code, report = _inspect(capsys, bad)
    assert code == 3 and "truncated" in report["studies"][0]["error"]
    assert main(["inspect", str(tmp_path / "empty_dir_missing")]) == 4
    (tmp_path / "empty").mkdir()
    assert main(["inspect", str(tmp_path / "empty")]) == 4
