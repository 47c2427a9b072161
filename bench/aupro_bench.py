"""Benchmark: medzsad's AUPRO against the reference 200-threshold loop.

Random anomaly maps with random blob masks (the issue's case: 100 maps of 518 x 518). Times the
reference-style loop (binarise, relabel and measure every region at each of 200 thresholds, as
AnomalyCLIP ``metrics.cal_pro_score``) and :func:`medzsad.analysis.metrics.aupro`, checks they agree, and
appends the result to ``bench/RESULTS.md``.

Usage::

    python bench/aupro_bench.py               # 100 maps of 518 x 518
    python bench/aupro_bench.py --n 10 --size 128 --no-record
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from medzsad.analysis.metrics import aupro

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pro_oracle import slow_pro_score  # noqa: E402 - the tests' reference loop, one copy


def make_case(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        for _ in range(rng.integers(0, 4)):  # 0-3 elliptic blobs; some images normal
            cy, cx = rng.integers(0, size, 2)
            ry, rx = rng.integers(size // 40 + 1, size // 8 + 2, 2)
            masks[i][((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 1
    noise = rng.random((n, size, size)).astype(np.float32)
    smooth = np.stack([gaussian_filter(noise[i], sigma=4) for i in range(n)])
    smooth = (smooth - smooth.mean()) / smooth.std()
    signal = np.stack([gaussian_filter(masks[i].astype(np.float32), sigma=2) for i in range(n)])
    maps = smooth + 1.5 * signal
    return masks, maps.astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--size", type=int, default=518)
    p.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = p.parse_args()
    masks, maps = make_case(args.n, args.size)

    t0 = time.perf_counter()
    ours = aupro(masks, maps)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = slow_pro_score(masks, maps)
    t_ref = time.perf_counter() - t0

    speedup = t_ref / t_ours
    line = (
        f"| {dt.date.today().isoformat()} | {platform.processor() or platform.machine()} "
        f"({os.cpu_count()} cpu), numpy {np.__version__} | {args.n} x {args.size}x{args.size} "
        f"| {t_ref:.1f} s | {t_ours:.2f} s | {speedup:.0f}x | {abs(ours - ref):.1e} |"
    )
    print(f"reference loop: {t_ref:.2f} s  AUPRO={ref:.12f}")
    print(f"medzsad aupro : {t_ours:.2f} s  AUPRO={ours:.12f}")
    print(f"speed-up {speedup:.1f}x, |difference| {abs(ours - ref):.2e}")
    if not args.no_record:
        out = Path(__file__).with_name("RESULTS.md")
        header = (
            "# AUPRO benchmark (bench/aupro_bench.py)\n\n"
            "Reference = AnomalyCLIP `cal_pro_score` loop (200 thresholds); ours = "
            "`medzsad.analysis.metrics.aupro`.\n\n"
            "| date | machine | maps | reference | ours | speed-up | abs. difference |\n"
            "|---|---|---|---|---|---|---|\n"
        )
        text = out.read_text() if out.exists() else header
        tmp = out.with_suffix(".md.tmp")
        tmp.write_text(text + line + "\n")
        os.replace(tmp, out)


if __name__ == "__main__":
    main()
