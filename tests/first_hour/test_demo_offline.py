"""The README's demo, offline: the demo cohort runs with --smoke, then every missing weight is named.

Runs scripts/_demo_run.sh (the part of scripts/demo.sh after the virtual-environment set-up) in a
copy of the repository layout with an empty weight cache. Downloads are pointed at a closed port
on 127.0.0.1 through the standard proxy variables, so nothing leaves the machine. The demo data
are written beforehand at 4 mm to keep the smoke run short (the script keeps existing data).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from medzsad.cli import EXIT_MODEL, main

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_offline_demo_ends_with_a_smoke_review_page_and_names_every_missing_file(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "_demo_run.sh", root / "scripts")
    shutil.copytree(REPO_ROOT / "cohorts", root / "cohorts")
    assert main(["demo-data", str(root / "demo-data"), "--resolution", "4"]) == 0
    medzsad = Path(sys.executable).parent / "medzsad"
    closed = "http://127.0.0.1:9"  # nothing listens: every download fails at once, offline
    env = {
        **os.environ,
        "MEDZSAD": str(medzsad),
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
        ["bash", "scripts/_demo_run.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == EXIT_MODEL, proc.stderr[-3000:]
    err = proc.stderr
    assert "Traceback" not in err
    # the message that matters comes last, after the smoke run, each step on its own line
    last = err[err.rindex("=" * 40) :]
    assert "2 weight file(s) could not be downloaded" in last
    for name in ("clip_vitl14_336.openai", "anomalyclip_vitl14_336.mvtec"):
        step = f"medzsad weights import {name} /path/to/"
        assert any(line.strip().startswith(step) for line in last.splitlines())
    assert "reports/demo/report.html" in last
    assert f"{medzsad} run cohorts/demo.yaml --smoke" in last
    # ... and the demo cohort itself ran, offline, into its default folder
    out = root / "reports" / "demo"
    assert "SMOKE RUN" in (out / "report.html").read_text()
    studies = pd.read_csv(out / "studies.csv")
    assert len(studies) == 6 and (studies["status"] == "done").all()
