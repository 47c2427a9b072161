"""Wall time of the command line's fast paths: --help, --version, a config error, a scan as cohort.

Usage: python bench/cli_startup.py [--medzsad PATH] [--repeat N]
Prints a Markdown table (median and max of N runs, seconds) and the cumulative import time of
``medzsad.cli`` from ``python -X importtime`` (microseconds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(cmd: list[str], repeat: int) -> tuple[float, float, int]:
    runs = []
    rc = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, capture_output=True).returncode
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), max(runs), rc


def _import_us(python: str) -> int:
    out = subprocess.run(
        [python, "-X", "importtime", "-c", "import medzsad.cli"], capture_output=True, text=True
    )
    for line in out.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "medzsad.cli":
            return int(parts[1])
    return -1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--medzsad", default=str(Path(sys.executable).parent / "medzsad"))
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    bad = tmp / "bad.yaml"
    bad.write_text("name: b\ninputs: {paths: [x.nii.gz]}\nmodel: {devcie: cpu}\n")
    scan = tmp / "scan.nii.gz"
    scan.write_bytes(b"\x1f\x8b\x08\x00not really")
    cases = {
        "medzsad --help": [a.medzsad, "--help"],
        "medzsad --version": [a.medzsad, "--version"],
        "medzsad run --help": [a.medzsad, "run", "--help"],
        "medzsad train --help": [a.medzsad, "train", "--help"],
        "medzsad run bad.yaml (unknown key)": [a.medzsad, "run", str(bad)],
        "medzsad run scan.nii.gz (scan as cohort)": [a.medzsad, "run", str(scan)],
    }
    print(f"cpus: {os.cpu_count()}, load avg: {os.getloadavg()[0]:.1f}, repeat {a.repeat}\n")
    print("| command | median s | max s | exit |\n|---|---:|---:|---:|")
    for name, cmd in cases.items():
        med, worst, rc = _time(cmd, a.repeat)
        print(f"| `{name}` | {med:.2f} | {worst:.2f} | {rc} |")
    python = str(Path(a.medzsad).parent / "python")
    print(f"\n`python -X importtime -c 'import medzsad.cli'`: cumulative {_import_us(python)} us")


if __name__ == "__main__":
    main()
