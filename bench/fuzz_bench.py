"""Long fuzz run (issue 16): the test suite's generator for many cases, with peak RSS per case.

Usage: ``python bench/fuzz_bench.py --cases 10000 --seed 16 [--out /tmp/fuzz]``. Cases run in worker
subprocesses (``tests/io/fuzz_harness.py``) under a 4 GiB address-space limit, a 256 MiB voxel limit
and a 20 s timeout per case; the summary (outcomes, error types, peak RSS percentiles) is printed as
Markdown for bench/RESULTS.md, and every non-typed failure is listed.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "io"))

import fuzz_gen  # noqa: E402
import numpy as np  # noqa: E402
from fuzz_harness import BAD, CaseResult, run_cases  # noqa: E402


def _summary(results: list[CaseResult], seconds: float, args: argparse.Namespace) -> str:
    counts = collections.Counter(r.outcome for r in results)
    rss = np.array([r.peak_rss_mb for r in results if r.peak_rss_mb > 0])
    secs = np.array([r.seconds for r in results if r.seconds > 0])
    kinds = collections.Counter(r.case.split("/cases/")[1].split("/")[0].split("-", 2)[2] for r in results)
    types = collections.Counter(r.detail for r in results if r.outcome == "typed")
    lines = [
        f"- cases: {len(results)} (seed {args.seed}), wall {seconds:.0f} s on one core",
        "- outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        f"- untyped/wrong/hang/crash: {sum(counts[b] for b in BAD)}",
        f"- kinds: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}",
        "- typed errors: " + ", ".join(f"{k} {v}" for k, v in types.most_common()),
        f"- peak RSS per case (worker process, MiB): median {np.median(rss):.0f}, p99 "
        f"{np.percentile(rss, 99):.0f}, max {rss.max():.0f}",
        f"- seconds per case: median {np.median(secs) * 1000:.1f} ms, "
        f"p99 {np.percentile(secs, 99) * 1000:.0f} ms, max {secs.max():.2f} s",
    ]
    for r in results:
        if r.outcome in BAD:
            lines.append(f"  - {r.outcome}: {r.case}: {r.detail}")
    return "\n".join(lines)


def main() -> None:
    """Generate, run, print the summary."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="medzsad-fuzz-"))
    seeds = fuzz_gen.build_seeds(root / "seeds")
    t0 = time.perf_counter()
    results: list[CaseResult] = []
    for start in range(0, args.cases, 500):
        chunk = root / "cases"
        paths = [
            str(fuzz_gen.write_case(seeds, args.seed, i, chunk))
            for i in range(start, min(args.cases, start + 500))
        ]
        results += run_cases(paths, timeout_s=20.0)
        bad = [r for r in results if r.outcome in BAD]
        keep = {r.case for r in bad}
        for p in chunk.iterdir():
            if not any(k.startswith(str(p)) for k in keep):
                shutil.rmtree(p, ignore_errors=True)
        print(
            f"{len(results)} cases, {len(bad)} bad, {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    print(_summary(results, time.perf_counter() - t0, args))
    if args.out is None and not any(r.outcome in BAD for r in results):
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
