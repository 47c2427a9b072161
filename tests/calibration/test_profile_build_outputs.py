"""The profile folder of ``medzsad profile``: refused before the model loads, written whole, shareable.

Tiny synthetic normals and the tiny random model. A profile folder is either absent, a complete
profile, or the earlier profile it replaces: never a half-written one, never a user's files
overwritten. A normal drawn as a reference that cannot be read is left out like any failed normal,
and its path is not shown.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import medzsad.site_profile.references as references
from medzsad.cli import EXIT_OUTPUT, main
from medzsad.cohort.options import RunOptions
from medzsad.errors import ConfigError, OutputError
from medzsad.ids import hashed_id
from medzsad.model.references import PatchBank
from medzsad.references.bank_io import BANK_FILE, BankInfo, save_banks
from medzsad.references.sampling import split_references
from medzsad.site_profile.builder import build_profile

OFF = RunOptions(progress="off")
# 4 calibration normals + 2 references; studies load in this process (no worker start-up: fast)
PROFILE = "profile:\n  references: 2\n  alpha: 0.2\nexecutor: {workers: 0}\n"
FILES = {"profile.json", "calibration.png", BANK_FILE}


@pytest.fixture(scope="module")
def normals(tmp_path_factory: pytest.TempPathFactory, calib_helpers: dict[str, Any]) -> Path:
    """Seven readable normals n0..n6 and a truncated copy of n6 (``bad.nii.gz``)."""
    root = tmp_path_factory.mktemp("normals")
    calib_helpers["write_studies"](root, [(f"n{i}", 300 + i) for i in range(7)])
    (root / "bad.nii.gz").write_bytes((root / "n6.nii.gz").read_bytes()[:3000])
    return root


def _cohort(
    root: Path, normals: Path, name: str, rows: list[tuple[str, str]], helpers: dict[str, Any]
) -> Path:
    """A normals cohort file listing ``rows`` (study id, file under ``normals``)."""
    manifest = root / f"{name}.csv"
    manifest.write_text("study_id,path\n" + "".join(f"{sid},{normals / f}\n" for sid, f in rows))
    return helpers["cohort_yaml"](root / f"{name}.yaml", manifest, root / f"run-{name}", name, "", PROFILE)


def _good(n: int) -> list[tuple[str, str]]:
    return [(f"n{i}", f"n{i}.nii.gz") for i in range(n)]


@pytest.fixture()
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the model fails the test: a refusal must come before it."""

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(references, "build_model_scorer", refuse)


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory, normals: Path, calib_helpers: dict[str, Any]) -> Path:
    """A profile folder holding a complete profile of n0..n5."""
    root = tmp_path_factory.mktemp("earlier")
    folder = root / "prof"
    build_profile(_cohort(root, normals, "good", _good(6), calib_helpers), folder, OFF)
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


@pytest.mark.parametrize("below", [False, True])
def test_an_out_path_that_is_a_file_is_refused_before_the_model_loads(
    tmp_path: Path,
    normals: Path,
    calib_helpers: dict[str, Any],
    no_model: None,
    below: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cohort = _cohort(tmp_path, normals, "c", _good(7), calib_helpers)
    afile = tmp_path / "afile.txt"
    afile.write_text("hi\n")
    out = afile / "sub" if below else afile
    assert main(["profile", str(cohort), "-q", "-o", str(out)]) == EXIT_OUTPUT
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(afile) in err and "is a file" in err and "unexpected" not in err
    assert afile.read_text() == "hi\n" and not (tmp_path / "run-c").exists()  # nothing written


def test_a_folder_of_user_files_is_refused_before_the_model_loads_and_kept(
    tmp_path: Path,
    normals: Path,
    calib_helpers: dict[str, Any],
    no_model: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cohort = _cohort(tmp_path, normals, "c", _good(7), calib_helpers)
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "profile.json").write_text('{"mine": 1}')
    assert main(["profile", str(cohort), "-q", "-o", str(user)]) == EXIT_OUTPUT
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "profile.json" in err and "not a medzsad profile" in err
    assert (user / "profile.json").read_text() == '{"mine": 1}' and not (tmp_path / "run-c").exists()
    # a medzsad profile with a user's file beside it: the user's file is named, nothing replaced
    (user / "profile.json").write_text(json.dumps({"kind": "medzsad-profile"}))
    (user / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds notes.txt") as e:
        build_profile(cohort, user, OFF)
    assert "profile.json" not in str(e.value) and sorted(p.name for p in user.iterdir()) == [
        "notes.txt",
        "profile.json",
    ]


def test_a_profile_folder_in_an_input_folder_or_holding_the_run_is_refused(
    tmp_path: Path, normals: Path, calib_helpers: dict[str, Any], no_model: None
) -> None:
    cohort = _cohort(tmp_path, normals, "c", _good(7), calib_helpers)
    text = cohort.read_text().replace(f"  manifest: {tmp_path / 'c.csv'}\n", f"  paths: [{normals}]\n")
    scanned = tmp_path / "scanned.yaml"
    scanned.write_text(text)
    with pytest.raises(ConfigError, match="lies in the input folder"):
        build_profile(scanned, normals / "profile", OFF)
    with pytest.raises(OutputError, match="run folder"):
        build_profile(cohort, tmp_path, OFF)
    assert not (normals / "profile").exists() and not (tmp_path / "run-c").exists()


def test_a_failed_build_leaves_no_partial_profile_and_keeps_the_earlier_one(
    tmp_path: Path, normals: Path, calib_helpers: dict[str, Any], earlier: Path
) -> None:
    """n0..n4 + a truncated normal: 3 calibration normals for alpha 0.2, which needs 4."""
    cohort = _cohort(tmp_path, normals, "short", [*_good(5), ("trunc", "bad.nii.gz")], calib_helpers)
    before = _snapshot(earlier)
    with pytest.raises(ConfigError, match="stratum 'all' has 3, needs 1 more"):
        build_profile(cohort, options=OFF)  # the default folder, <run>/profile
    run = tmp_path / "run-short"
    assert (run / "ledger.sqlite").is_file() and not (run / "profile").exists() and _leftovers(run) == []
    with pytest.raises(ConfigError, match="needs 1 more"):
        build_profile(cohort, earlier, OFF)  # an earlier profile's folder
    assert _snapshot(earlier) == before and _leftovers(earlier.parent) == []


def _expected_references(ids: list[str], bad: str) -> tuple[str, ...]:
    """The seed-0 draw with ``bad`` left out and the first spare (seeded order of the rest) in its place."""
    drawn = split_references(ids, 2, 0).references
    rest = sorted(set(ids) - set(drawn))
    spares = [rest[int(i)] for i in np.random.default_rng([0, 1]).permutation(len(rest))]
    kept = [r for r in drawn if r != bad]
    return (*kept, spares[0])


def test_an_unreadable_reference_is_replaced_counted_and_its_path_hidden(
    tmp_path: Path,
    normals: Path,
    calib_helpers: dict[str, Any],
    earlier: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = [f"n{i}" for i in range(7)]
    bad = split_references(ids, 2, 0).references[0]  # the truncated file stands for a drawn reference
    rows = [(sid, "bad.nii.gz" if sid == bad else f"{sid}.nii.gz") for sid in ids]
    cohort = _cohort(tmp_path, normals, "refbad", rows, calib_helpers)
    result = build_profile(cohort, earlier, OFF)  # replaces the earlier profile in that folder
    d = json.loads((earlier / "profile.json").read_text())
    refs = tuple(d["references"]["ids"])
    calib = [s["id"] for s in d["strata"]["all"]["studies"]]
    assert refs == _expected_references(ids, bad) and bad not in refs and bad not in calib
    assert len(calib) == 4 and d["n_failed"] == 1 and result.run.n_failed == 1
    assert d["name"] == "refbad" and {p.name for p in earlier.iterdir()} == FILES
    shown = [r.getMessage() for r in caplog.records if "drawn as a reference" in r.getMessage()]
    assert len(shown) == 1 and f"<{hashed_id(bad)}>" in shown[0] and "NiftiError" in shown[0]
    for text in [r.getMessage() for r in caplog.records]:
        assert str(normals) not in text and "bad.nii.gz" not in text


def test_too_few_readable_normals_for_the_references_is_a_config_error_before_scoring(
    tmp_path: Path, normals: Path, calib_helpers: dict[str, Any]
) -> None:
    ids = [f"n{i}" for i in range(6)]
    bad = split_references(ids, 2, 0).references[0]
    rows = [(sid, "bad.nii.gz" if sid == bad else f"{sid}.nii.gz") for sid in ids]
    cohort = _cohort(tmp_path, normals, "tight", rows, calib_helpers)
    with pytest.raises(ConfigError, match=r"need 6 \(2 references \+ ceil\(1/alpha\) - 1 = 4") as e:
        build_profile(cohort, options=OFF)
    assert "add 1 normal studies" in str(e.value) and str(normals) not in str(e.value)
    run = tmp_path / "run-tight"
    assert not run.exists()  # nothing written: the run folder is created when scoring starts


@pytest.fixture()
def umask() -> Iterator[Any]:
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_the_bank_file_has_the_mode_every_written_file_has(tmp_path: Path, umask: Any, mask: int) -> None:
    umask(mask)
    bank = PatchBank(torch.zeros(1, 3, 4), torch.arange(3.0), None)
    path = save_banks(tmp_path / BANK_FILE, {"axial": bank}, BankInfo("h", ("a", "b")))
    other = tmp_path / "other.txt"
    other.write_text("x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(other.stat().st_mode) == 0o666 & ~mask


def test_every_file_of_a_built_profile_has_the_same_mode(earlier: Path) -> None:
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in earlier.iterdir()}
    assert set(modes) == FILES and len(set(modes.values())) == 1, modes


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_a_staged_folder_is_removed_on_failure_and_a_killed_builds_only_if_it_is_ours(tmp_path: Path) -> None:
    from medzsad.site_profile.folder import staged_folder

    real = tmp_path / "prof"
    real.mkdir()
    (real / "profile.json").write_text(json.dumps({"kind": "medzsad-profile", "v": "earlier"}))
    dead, alive = _dead_pid(), os.getppid()
    killed = tmp_path / f".prof.partial-{dead}"  # a killed build's: its process is gone
    killed.mkdir()
    (killed / BANK_FILE).write_bytes(b"")  # not a bank: not a build's file
    (killed / "profile.json.tmp-12").write_text("{")
    ours = tmp_path / f".prof.old-{dead}"
    ours.mkdir()
    (ours / "profile.json.tmp-12").write_text("{")
    (ours / ".tmpAb12Cd").write_text("")  # safetensors' own temporary file
    running = tmp_path / f".prof.partial-{alive}"
    running.mkdir()
    with pytest.raises(RuntimeError), staged_folder(real) as stage:
        stage.mkdir()
        (stage / "profile.json").write_text(json.dumps({"kind": "medzsad-profile", "v": "new"}))
        raise RuntimeError("the build failed")
    assert not stage.exists() and json.loads((real / "profile.json").read_text())["v"] == "earlier"
    assert killed.is_dir() and running.is_dir() and not ours.exists()
    with staged_folder(real) as stage:
        stage.mkdir()
        (stage / "profile.json").write_text(json.dumps({"kind": "medzsad-profile", "v": "new"}))
    assert json.loads((real / "profile.json").read_text())["v"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["prof", killed.name, running.name])
