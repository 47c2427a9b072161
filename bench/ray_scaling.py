"""Ray executor scaling: studies/hour with 1 and 2 actors and Ray's overhead per study.

A NIfTI CT cohort (``--size`` x ``--size`` x ``--slices``) runs through ``run_cohort`` with
``executor: {kind: ray}`` and the stand-in scorer of ``bench/pipeline_throughput.py`` (it sleeps
``--latency-ms`` per slice), so the figure shows the executor, not the model:

- studies/hour with 1 and with 2 actors (steady rate between the first and last finished study),
  scaling efficiency = throughput(2) / (2 x throughput(1));
- Ray's overhead: the fixed start-up of a run (wall time minus the studies' time at the steady
  rate: cluster connection, actors, one model per actor) and the steady seconds per study of one
  actor against the local executor with ``workers: 0`` (same work, no Ray).

Usage: ``python bench/ray_scaling.py --studies 12 --size 128 --slices 40 --latency-ms 20``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ray  # noqa: E402
from pipeline_throughput import StandInScorer, _steady_rate, write_cohort  # noqa: E402

from medzsad.cohort.launch import run_cohort
from medzsad.cohort.options import RunOptions  # noqa: E402
from medzsad.config import parse_cohort  # noqa: E402

MODEL = "model: {tiny: true, clip_weights: random, prompt_weights: random, image_size: 112, batch_size: 8}\n"


def _run(root: Path, executor: str, image_size: int, latency_s: float) -> tuple[float, float, int]:
    text = (
        "name: ray-bench\ninputs: {manifest: manifest.csv}\npipeline: {preset: ct-abdomen}\n"
        f"{MODEL}output: {{dir: out-{abs(hash(executor))}, outputs: [heatmap, mask, slices, provenance]}}\n"
        f"{executor}\n"
    )
    cfg = parse_cohort(text, base_dir=root)
    t = time.perf_counter()
    summary = run_cohort(cfg, RunOptions(progress="off"), scorer=StandInScorer(image_size, latency_s))
    wall = time.perf_counter() - t
    return wall, _steady_rate(cfg.out_dir), summary.n_done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=12)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--slices", type=int, default=40)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    args = ap.parse_args()
    latency = args.latency_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cohort(root, "nifti", args.studies, args.size, args.slices)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            local_wall, local_rate, n0 = _run(root, "executor: {workers: 0}", 112, latency)
            rows = []
            for workers in (1, 2):
                ex = f"executor: {{kind: ray, address: auto, actors: {workers}, cpus_per_actor: 1}}"
                wall, rate, n = _run(root, ex, 112, latency)
                rows.append((workers, wall, rate, n))
        finally:
            ray.shutdown()
    shape = f"{args.size}x{args.size}x{args.slices}"
    print(f"cohort: {args.studies} NIfTI CT {shape}, stand-in {args.latency_ms} ms/slice")
    print(f"local workers=0: {local_wall:.1f} s wall, {local_rate:.0f} studies/h steady ({n0} done)")
    print("| Ray actors | wall s | studies/h (steady) | done |")
    print("|---:|---:|---:|---:|")
    for w, wall, rate, n in rows:
        print(f"| {w} | {wall:.1f} | {rate:.0f} | {n} |")
    eff = rows[1][2] / (2 * rows[0][2]) if rows[0][2] else float("nan")
    print(f"scaling efficiency throughput(2)/(2 x throughput(1)) = {eff:.2f}")
    # fixed cost of a run = wall time - the time the steady rate needs for the studies
    fixed_local = local_wall - args.studies * 3600 / local_rate
    for w, wall, rate, _n in rows:
        fixed = wall - args.studies * 3600 / rate
        print(f"{w} actor(s): fixed start-up {fixed:.1f} s (local: {fixed_local:.1f} s)")
    per_study = 3600 / rows[0][2] - 3600 / local_rate
    print(f"steady s/study, 1 actor minus local: {per_study:+.2f} s (negative: the actor overlaps 2)")


if __name__ == "__main__":
    main()
