"""The README's test command does its own set-up: scripts/_system.sh names what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]


def _stub_venv(folder: Path, **programs: str) -> Path:
    """A stand-in virtual environment: ``bin/<name>`` shell scripts with the given bodies."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in programs.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    return folder


def _source(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``. scripts/<script>; echo reached`` in bash from the repository root."""
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-c", f". scripts/{script}; echo reached"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


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
    proc = _source("_system.sh", env)
    assert proc.returncode == 2
    assert "reached" not in proc.stdout
    for package in ("dicom3tools", "orthanc", "chromium"):
        assert package in proc.stderr
    assert "apt-get install -y --no-install-recommends dicom3tools orthanc" in proc.stderr


def test_system_check_is_silent_when_everything_is_present() -> None:
    proc = _source("_system.sh")
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


def test_demo_sh_offline_runs_the_demo_with_smoke_and_ends_with_the_weights_message(tmp_path: Path) -> None:
    """The README's first command, offline: the demo cohort runs with --smoke (a review page marked
    SMOKE), no pip or build noise reaches the terminal, and the one message that matters is last:
    every missing weight file with its import command.

    A stand-in virtual environment: its python answers pip with 200 lines of noise (as pip and the
    build backend do) and runs medzsad as the real one; downloads go to a closed local port.
    """
    import sys

    root = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "scripts", root / "scripts")
    shutil.copytree(REPO_ROOT / "cohorts", root / "cohorts")
    _stub_venv(
        tmp_path / "venv",
        python='if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then i=0; while [ $i -lt 200 ]; do '
        'echo "WARNING: pip-says-$i"; i=$((i+1)); done; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n',
        medzsad=f'exec {sys.executable} -m medzsad "$@"\n',
    )
    data = [sys.executable, "-m", "medzsad", "demo-data", str(root / "demo-data"), "--resolution", "4"]
    assert subprocess.run([*data, "--normals", "0"], capture_output=True).returncode == 0
    closed = "http://127.0.0.1:9"
    env = {
        **os.environ,
        "MEDZSAD_VENV": str(tmp_path / "venv"),
        "MEDZSAD_HOME": str(tmp_path / "medzsad_home"),
        "HOME": str(tmp_path / "home"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "MEDZSAD_FETCH_RETRIES": "0",
        **{k: closed for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")},
    }
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    proc = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    shown = (proc.stdout + proc.stderr).splitlines()
    assert proc.returncode == 5, proc.stderr[-2000:]
    assert not [line for line in shown if "pip-says-" in line]  # pip's output is in the log
    assert (tmp_path / "venv" / "pip.log").read_text().count("pip-says-") == 600  # 3 pip calls, kept
    assert len(shown) < 40, "\n".join(shown)
    assert shown[-1].strip().endswith("run cohorts/demo.yaml --smoke")  # the message, last
    assert "Traceback" not in proc.stderr
    # the message that matters comes last, after the smoke run, each step on its own line
    last = proc.stderr[proc.stderr.rindex("=" * 40) :]
    assert "2 weight file(s) could not be downloaded" in last
    for name in ("clip_vitl14_336.openai", "anomalyclip_vitl14_336.mvtec"):
        step = f"medzsad weights import {name} /path/to/"
        assert any(line.strip().startswith(step) for line in last.splitlines())
    assert "reports/demo/report.html" in last
    # ... and the demo cohort itself ran, offline, into its default folder
    out = root / "reports" / "demo"
    assert "SMOKE RUN" in (out / "report.html").read_text()
    studies = pd.read_csv(out / "studies.csv")
    assert len(studies) == 6 and (studies["status"] == "done").all()


def test_a_full_disk_during_the_install_is_named_with_the_free_space(tmp_path: Path) -> None:
    """pip's OSError 28 ends the set-up with one line that says the disk is full and how much is free."""
    full = "echo 'ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device'\n"
    _stub_venv(tmp_path / "venv", python=full + "exit 1\n")
    proc = _source("_venv.sh", {**os.environ, "MEDZSAD_VENV": str(tmp_path / "venv")})
    assert proc.returncode == 1 and "reached" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the disk is full (") and " free on /" in last, proc.stderr
    assert "needs about 7 GB" in last
