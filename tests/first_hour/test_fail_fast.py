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

from medzsad.cli import EXIT_CONFIG, EXIT_MODEL, EXIT_OUTPUT

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
