"""Model throughput benchmark: images/s and peak memory of AnomalyCLIP inference.

Random weights (no download): ViT-B-16 @ 224 and ViT-L-14-336 @ 518, batch 1 and 8, on CPU and,
when present, on CUDA (fp32 and bf16). Prints a Markdown table to paste into bench/RESULTS.md.

Usage: python bench/model_throughput.py [--devices cpu cuda] [--repeats 3] [--warmup 1] [--threads 2]
       [--compile] [--precisions fp32 bf16] [--json out.json]
       python bench/model_throughput.py --precision-report [--devices cpu cuda] [--batches 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from datetime import date

import torch

from medzsad.model.build import build_anomalyclip
from medzsad.model.config import load_architecture
from medzsad.model.inference import Detector
from medzsad.model.precision import precision_deviation

CASES = [("anomalyclip_vitb16", "ViT-B-16", 224), ("anomalyclip_vitl14_336", "ViT-L-14-336", 518)]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_one(
    arch: str, device: str, precision: str, batch: int, repeats: int, warmup: int = 1, compile: bool = False
) -> dict:
    """Time ``repeats`` calls of ``Detector.score`` after ``warmup`` warm-up calls.

    Records the mean and the best wall time per call and the process CPU time per call (the CPU
    time is much less sensitive to other processes sharing the cores than the wall time).
    """
    model = build_anomalyclip(load_architecture(arch), seed=0)
    det = Detector(model, device=device, precision=precision, **({"compile": True} if compile else {}))
    x = torch.randn(batch, 3, det.image_size, det.image_size)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    det.text_features()
    for _ in range(warmup):
        det.score(x)  # warm-up (kernels selected, graphs compiled)
    walls = []
    c0 = time.process_time()
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        det.score(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - t0)
    cpu = (time.process_time() - c0) / repeats
    dt = sum(walls) / repeats
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else _peak_rss_mib()
    return {
        "arch": arch,
        "device": device,
        "precision": precision + ("+compile" if compile else ""),
        "batch": batch,
        "threads": torch.get_num_threads(),
        "seconds_per_batch": dt,
        "best_seconds_per_batch": min(walls),
        "cpu_seconds_per_batch": cpu,
        "images_per_s": batch / dt,
        "peak_mib": peak,
        "peak_kind": "cuda max_memory_allocated" if device.startswith("cuda") else "process max RSS",
    }


def precision_report(archs: list[str], devices: list[str], batch: int) -> None:
    """Print max |delta| of scores and maps and the min Spearman of maps vs fp32 per precision."""
    print("\n| arch | device | precision | images | max abs d score | max abs d map | min Spearman map |")
    print("|---|---|---|---|---|---|---|")
    for device in devices:
        for arch in archs:
            model = build_anomalyclip(load_architecture(arch), seed=0)
            size = model.image_size
            x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
            for precision in ["bf16", "fp16"] if device.startswith("cuda") else ["bf16"]:
                d = precision_deviation(model, x, precision, device)
                print(
                    f"| {arch} | {device} | {precision} | {batch} | {d.max_abs_score:.2e} "
                    f"| {d.max_abs_map:.2e} | {d.min_spearman_map:.5f} |",
                    flush=True,
                )


def main() -> None:
    """Run the benchmark grid and print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--arch", nargs="+", default=[a for a, _, _ in CASES])
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--compile", action="store_true", help="Detector(compile=True) (model.compile)")
    ap.add_argument("--precisions", nargs="+", default=None, help="default: fp32 (CPU), fp32 bf16 (CUDA)")
    ap.add_argument(
        "--precision-report", action="store_true", help="only report bf16/fp16 deviations from fp32"
    )
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.precision_report:
        precision_report(args.arch, args.devices, max(args.batches))
        return
    rows = []
    for device in args.devices:
        precisions = args.precisions or (["fp32", "bf16"] if device.startswith("cuda") else ["fp32"])
        for arch in args.arch:
            for precision in precisions:
                for batch in args.batches:
                    rows.append(
                        bench_one(arch, device, precision, batch, args.repeats, args.warmup, args.compile)
                    )
                    r = rows[-1]
                    print(
                        f"{arch} {device} {precision} b{batch}: {r['images_per_s']:.3f} img/s, "
                        f"peak {r['peak_mib']:.0f} MiB",
                        flush=True,
                    )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(
        f"\n{date.today()} | {platform.processor() or platform.machine()} | {torch.get_num_threads()} threads"
        f" | torch {torch.__version__} | GPU {gpu}\n"
    )
    print("| arch | device | precision | batch | s/batch | best s/batch | CPU s/batch | img/s | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['arch']} | {r['device']} | {r['precision']} | {r['batch']} | {r['seconds_per_batch']:.3f} "
            f"| {r['best_seconds_per_batch']:.3f} | {r['cpu_seconds_per_batch']:.3f} "
            f"| {r['images_per_s']:.3f} | {r['peak_mib']:.0f} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
