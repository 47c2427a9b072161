"""The README's test command does its own set-up: scripts/_system.sh names what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_system_check_names_every_missing_package_and_the_command(tmp_path: Path) -> None:
    # A PATH with none of the tools and a non-root `id`: the script must stop and say what to install.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    ls = shutil.which("ls")
    assert ls is not None
    (bin_dir / "ls").symlink_to(ls)
    env = {**os.environ, "PATH": str(bin_dir)}
    proc = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-c", ". scripts/_system.sh; echo reached"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "reached" not in proc.stdout
    for package in ("dicom3tools", "orthanc", "chromium"):
        assert package in proc.stderr
    assert "apt-get install -y --no-install-recommends dicom3tools orthanc" in proc.stderr


def test_system_check_is_silent_when_everything_is_present() -> None:
    proc = subprocess.run(
        ["bash", "-c", ". scripts/_system.sh; echo reached"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "reached"
    assert proc.stderr == ""


def test_ci_calls_the_readme_test_command_and_installs_nothing_itself() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci
    assert "apt-get" not in ci
    assert "bash scripts/test.sh" in (REPO_ROOT / "README.md").read_text()


def test_wheel_carries_cohorts_and_the_report_template() -> None:
    import tomllib

    cfg = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"]["medzsad.cohorts"] == "cohorts"
    assert "*.yaml" in cfg["package-data"]["medzsad.cohorts"]
    assert "*.j2" in cfg["package-data"]["medzsad.report.templates"]
    assert (REPO_ROOT / "medzsad" / "report" / "templates" / "report.html.j2").is_file()
    assert {p.name for p in (REPO_ROOT / "cohorts").glob("*.yaml")} >= {"demo.yaml"}
