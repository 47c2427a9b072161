"""A run that cannot start says so at once and writes nothing: checked before any model is loaded.

Each case runs the command line in a fresh process and checks that the model code (open_clip, the
runner) was never imported and that no output folder was left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medzsad.cli import EXIT_CONFIG, EXIT_FAILED_STUDIES, EXIT_INPUT, EXIT_MODEL, EXIT_OUTPUT

from .conftest import write_nifti

PROBE = (
    "import sys; from medzsad.cli import main; code = main(sys.argv[1:]); "
    "print('RESULT', code, 'open_clip' in sys.modules, 'medzsad.cohort.runner' in sys.modules)"
)


def _run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, bool, bool, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    _, code, clip, runner = line.split()
    return int(code), clip == "True", runner == "True", proc.stderr


def test_an_output_path_that_is_a_file(scan: Path, tmp_path: Path) -> None:
    target = tmp_path / "results.txt"
    target.write_text("my notes")
    code, clip, runner, err = _run("run", "-i", str(scan), "-o", str(target), "--smoke")
    assert code == EXIT_OUTPUT and "is a file, not a folder" in err and str(target) in err
    assert not clip and not runner and target.read_text() == "my notes"
    inside = tmp_path / "results.txt" / "out"  # a parent that is a file
    code, *_, err = _run("run", "-i", str(scan), "-o", str(inside), "--smoke")
    assert code == EXIT_OUTPUT and "a parent of the output folder" in err


def test_an_output_error_is_reported_before_torch_is_imported(scan: Path, tmp_path: Path) -> None:
    """launch and preflight import no model code: the run's types (study.types) stay torch-free."""
    target = tmp_path / "results.txt"
    target.write_text("my notes")
    probe = PROBE.replace("'open_clip' in sys.modules", "'torch' in sys.modules")
    proc = subprocess.run(
        [sys.executable, "-c", probe, "run", "-i", str(scan), "-o", str(target), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    assert line.split()[1:3] == [str(EXIT_OUTPUT), "False"], proc.stderr


def test_cuda_without_a_gpu_stops_before_anything_is_written(scan: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {"CUDA_VISIBLE_DEVICES": ""}  # no GPU visible, also on a machine that has one
    for device in ("cuda", "gpu"):  # gpu: TotalSegmentator's spelling of cuda
        code, clip, runner, err = _run(
            "run", "-i", str(scan), "-o", str(out), "--smoke", "--device", device, env=env
        )
        assert code == EXIT_MODEL and "no usable CUDA GPU" in err and "--device cpu" in err
        assert not clip and not runner and not out.exists()


def test_missing_weights_stop_before_anything_is_written(scan: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {"MEDZSAD_HOME": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"}
    code, _clip, runner, err = _run("run", "-i", str(scan), "-o", str(out), env=env)
    assert code == EXIT_MODEL and "medzsad weights import" in err
    # open_clip's own cache is looked in (pretrained tags), but no model is built and nothing written
    assert not runner and not out.exists()


@pytest.mark.parametrize("preset", ["ct-haed", "mr-brian"])
def test_a_misspelt_preset_in_a_cohort_file_is_a_configuration_error(
    tmp_path: Path, scan: Path, preset: str
) -> None:
    cohort = tmp_path / "c.yaml"
    cohort.write_text(f"name: c\ninputs: {{paths: [{scan}]}}\npipeline:\n  preset: {preset}\n")
    code, clip, runner, err = _run("run", str(cohort), "--smoke")
    assert code == EXIT_CONFIG and f"{cohort}:4" in err and "did you mean" in err
    assert not clip and not runner


def test_a_folder_with_a_users_own_tables_is_refused_before_the_model(scan: Path, tmp_path: Path) -> None:
    """A run replaces studies.csv and report.html: in a folder that is not a run's, they are the user's."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "studies.csv").write_text("my precious table\n")
    (out / "report.html").write_text("mine")
    code, clip, runner, err = _run("run", "-i", str(scan), "-o", str(out), "--smoke")
    assert code == EXIT_OUTPUT and "studies.csv, report.html" in err and "not a medzsad run folder" in err
    assert not clip and not runner
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "studies.csv"]
    assert (out / "studies.csv").read_text() == "my precious table\n"
    # a medzsad run folder (it has the run's ledger) reruns over its own tables
    run = tmp_path / "run"
    assert _run("run", "-i", str(scan), "-o", str(run), "--smoke")[0] == 0
    assert (run / "studies.csv").is_file() and (run / "ledger.sqlite").is_file()
    assert _run("run", "-i", str(scan), "-o", str(run), "--smoke")[0] == 0


def test_an_output_folder_in_the_input_folder_is_refused(tmp_path: Path) -> None:
    """Outputs written inside an input folder would be read back as studies by the next run."""
    folder = tmp_path / "export"
    write_nifti(folder / "head.nii.gz")
    for out in (folder, folder / "results"):
        code, clip, runner, err = _run("run", "-i", str(folder), "-o", str(out), "--smoke")
        assert code == EXIT_CONFIG and "the output folder" in err and "export-medzsad" in err, err
        assert not clip and not runner
    assert sorted(p.name for p in folder.iterdir()) == ["head.nii.gz"]
    # beside the input folder, or holding it, is fine
    assert _run("run", "-i", str(folder), "-o", str(tmp_path / "export-medzsad"), "--smoke")[0] == 0


def test_a_manifest_whose_inputs_are_all_missing_stops_before_the_model(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("study_id,path\na,nothere.nii.gz\nb,gone/\n")
    cohort = tmp_path / "c.yaml"
    cohort.write_text(f"name: c\ninputs: {{manifest: {manifest}}}\n")
    code, clip, runner, err = _run("run", str(cohort), "--smoke", "-o", str(tmp_path / "out"))
    assert code == EXIT_INPUT and "none of the 2 input(s) listed exists" in err and str(manifest) in err
    assert not clip and not runner and not (tmp_path / "out").exists()


def test_a_missing_manifest_input_is_said_before_the_model_and_fails_as_a_study(
    scan: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"study_id,path\nok,{scan}\ngone,nothere.nii.gz\n")
    cohort = tmp_path / "c.yaml"
    cohort.write_text(f"name: c\ninputs: {{manifest: {manifest}}}\n")
    code, _clip, _runner, err = _run("run", str(cohort), "--smoke", "-o", str(tmp_path / "out"))
    assert code == EXIT_FAILED_STUDIES
    said = err.index("1 of 2 studies have no input file")
    assert said < err.index("model")  # before the model is described (loaded)
    assert "does not exist" in (tmp_path / "out" / "errors.csv").read_text()
