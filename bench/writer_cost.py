"""Writer cost per study: seconds and bytes of each NIfTI writer on a 512x512x300 volume.

A synthetic smooth heat map in [0, 1] (like the model's: Gaussian-smoothed, resized to the scan)
and its thresholded label mask; each writer runs ``--repeats`` times and the best wall time is
reported (the machine is shared, so the best is the least disturbed run) with the process CPU time
(less sensitive to other processes) and the file size. Times include the uint16 quantisation, gzip,
the atomic write (fsync) and the re-read check.

Usage: python bench/writer_cost.py [--shape 512 512 300] [--repeats 2] [--levels 1 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from scipy import ndimage

from medzsad.report.nifti_writer import write_heatmap, write_mask


def synthetic_heat(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """``shape`` float32 heat in [0, 1]: a smooth low-resolution random field, upsampled."""
    rng = np.random.default_rng(seed)
    low = rng.random((max(shape[0] // 16, 2), max(shape[1] // 16, 2), max(shape[2] // 4, 2)))
    low = ndimage.gaussian_filter(low, 1.0)
    zoom = [s / lo for s, lo in zip(shape, low.shape, strict=True)]
    heat = ndimage.zoom(low, zoom, order=1)[: shape[0], : shape[1], : shape[2]]
    heat = (heat - heat.min()) / (heat.max() - heat.min())
    return heat.astype(np.float32)


def _best(fn: Callable[[], Path], repeats: int) -> tuple[float, float, int]:
    """Best wall seconds, best process CPU seconds and the file size of ``repeats`` calls."""
    best, best_cpu = float("inf"), float("inf")
    size = 0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        p = fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
        size = p.stat().st_size
    return best, best_cpu, size


def main() -> None:
    """Time every writer variant and print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", nargs=3, type=int, default=[512, 512, 300])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--levels", nargs="+", type=int, default=[1, 6])
    args = ap.parse_args()
    shape = (args.shape[0], args.shape[1], args.shape[2])
    heat = synthetic_heat(shape)
    labels, _ = ndimage.label(heat >= 0.8)
    labels = np.minimum(labels, 255)
    affine = np.diag([0.7, 0.7, 1.25, 1.0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for level in args.levels:
            for dtype in ("float32", "uint16"):
                sec, cpu, size = _best(
                    lambda d=dtype, lv=level: write_heatmap(
                        out / f"h-{d}-{lv}.nii.gz", heat, affine, dtype=d, compression=lv
                    ),
                    args.repeats,
                )
                rows.append((f"heat map {dtype}", level, sec, cpu, size))
            sec, cpu, size = _best(
                lambda lv=level: write_mask(out / f"m-{lv}.nii.gz", labels, affine, compression=lv),
                args.repeats,
            )
            rows.append(("mask uint8", level, sec, cpu, size))
    print(f"\n{date.today()} | volume {shape[0]}x{shape[1]}x{shape[2]} | best of {args.repeats}\n")
    print("| writer | gzip level | wall s | CPU s | MB on disk |")
    print("|---|---|---|---|---|")
    for name, level, sec, cpu, size in rows:
        print(f"| {name} | {level} | {sec:.2f} | {cpu:.2f} | {size / 1e6:.1f} |")


if __name__ == "__main__":
    main()
