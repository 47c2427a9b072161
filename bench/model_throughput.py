"""Model throughput benchmark: images/s and peak memory of AnomalyCLIP inference.

Random weights (no download): ViT-B-16 @ 224 and ViT-L-14-336 @ 518, batch 1 and 8, on CPU and,
when present, on CUDA (fp32 and bf16). Prints a Markdown table to paste into bench/RESULTS.md.

Usage: python bench/model_throughput.py [--devices cpu cuda] [--repeats 3] [--json out.json]
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

CASES = [("anomalyclip_vitb16", "ViT-B-16", 224), ("anomalyclip_vitl14_336", "ViT-L-14-336", 518)]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_one(arch: str, device: str, precision: str, batch: int, repeats: int) -> dict:
    """Time ``repeats`` calls of ``Detector.score`` after one warm-up call."""
    model = build_anomalyclip(load_architecture(arch), seed=0)
    det = Detector(model, device=device, precision=precision)
    x = torch.randn(batch, 3, det.image_size, det.image_size)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    det.score(x)  # warm-up (text features cached, kernels selected)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        det.score(x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / repeats
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else _peak_rss_mib()
    return {
        "arch": arch,
        "device": device,
        "precision": precision,
        "batch": batch,
        "seconds_per_batch": dt,
        "images_per_s": batch / dt,
        "peak_mib": peak,
        "peak_kind": "cuda max_memory_allocated" if device.startswith("cuda") else "process max RSS",
    }


def main() -> None:
    """Run the benchmark grid and print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--arch", nargs="+", default=[a for a, _, _ in CASES])
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    rows = []
    for device in args.devices:
        precisions = ["fp32", "bf16"] if device.startswith("cuda") else ["fp32"]
        for arch in args.arch:
            for precision in precisions:
                for batch in args.batches:
                    rows.append(bench_one(arch, device, precision, batch, args.repeats))
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
    print("| arch | device | precision | batch | s/batch | images/s | peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['arch']} | {r['device']} | {r['precision']} | {r['batch']} | {r['seconds_per_batch']:.3f} "
            f"| {r['images_per_s']:.3f} | {r['peak_mib']:.0f} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
