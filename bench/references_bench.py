"""Few-shot reference banks (issue 10): bank size, memory and search time per slice on CPU.

For K = 1, 4, 16 reference studies of ``--slices`` scored slices each:

* ViT-B-16 @ 224 (random weights, 196 tokens x 512, one tapped layer): the real model encodes one
  reference study (time per slice); the bank of K studies holds that study's features K times with
  noise (search time does not depend on the values); time per slice of the zero-shot forward, of
  the reference search (window +-10 %) and of the whole blended score; 10 % coreset
  (greedy k-center per position bin) time, size and search time.
* ViT-L-14-336 @ 518 geometry (1,369 tokens x 768, one layer), synthetic normalised features:
  bank size and search time per slice.

Memory of the search: the largest single allocation of any op during one slice's search, measured
with the torch profiler (``profile_memory``), next to the configured chunk.

Times are CPU time of the process (one torch thread), medians of ``--repeats``.

Usage: python bench/references_bench.py [--slices 40] [--chunk-mib 64] [--threads 1] [--skip-vitl]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from medzsad.model.build import build_anomalyclip
from medzsad.model.config import load_architecture
from medzsad.model.inference import Detector
from medzsad.model.reference_scoring import ReferenceDetector, bank_from_images
from medzsad.model.references import PatchBank, SearchOptions, coreset_bank, merge_banks, reference_distance

MIB = 2**20


def _replicate(one: PatchBank, k: int) -> PatchBank:
    """K copies of a one-study bank, each perturbed (features re-normalised)."""
    g = torch.Generator().manual_seed(k)
    copies = []
    for _ in range(k):
        f = one.features.float()
        f = F.normalize(f + 0.05 * torch.randn(f.shape, generator=g), dim=-1).half()
        copies.append(PatchBank(f, one.positions.clone()))
    return merge_banks(copies)


def _timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """Median CPU seconds of ``repeats`` calls after one warm-up call.

    CPU time of this process (``time.process_time``), not wall time: on a shared machine other
    processes' load inflates wall time but not the work done (one torch thread: CPU = compute time).
    """
    fn()
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return float(statistics.median(times))


def _largest_alloc(fn) -> int:  # type: ignore[no-untyped-def]
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(
        (int(e.cpu_memory_usage) for e in prof.events() if e.name in ("aten::mm", "aten::_to_copy")),
        default=0,
    )


def vitb(slices: int, chunk: int, repeats: int) -> list[str]:
    """Rows of the ViT-B-16 table."""
    det = Detector(build_anomalyclip(load_architecture("anomalyclip_vitb16"), seed=0))
    x = torch.randn(slices, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    pos = torch.linspace(0, 1, slices)
    t = time.process_time()
    one = bank_from_images(det, x, pos)
    encode_s = (time.process_time() - t) / slices
    query = x[slices // 2 : slices // 2 + 1]
    qpos = pos[slices // 2 : slices // 2 + 1]
    zero_s = _timed(lambda: det.score(query), repeats)
    opts = SearchOptions(window=0.1, chunk_bytes=chunk)
    feats = det.encode(query)
    rows = []
    for k in (1, 4, 16):
        bank = one if k == 1 else _replicate(one, k)
        for label, b, core_s in _with_coreset(bank):
            search_s = _timed(lambda b=b: reference_distance(feats.patch_tokens, qpos, b, opts), repeats)
            full_s = _timed(lambda b=b: ReferenceDetector(det, b, 0.5, opts).score(query, qpos), repeats)
            peak = _largest_alloc(lambda b=b: reference_distance(feats.patch_tokens, qpos, b, opts))
            rows.append(
                f"| ViT-B-16 @ 224 | {k} | {label} | {b.n_patches:,} | {b.nbytes / MIB:.1f} | {core_s} | "
                f"{encode_s * 1000:.0f} | {zero_s * 1000:.0f} | {search_s * 1000:.1f} | "
                f"{full_s * 1000:.0f} | {peak / MIB:.2f} |"
            )
    return rows


def _with_coreset(bank: PatchBank) -> list[tuple[str, PatchBank, str]]:
    t = time.process_time()
    small = coreset_bank(bank, 0.1, bins=10, seed=0)
    return [("full", bank, "-"), ("10 % coreset", small, f"{time.process_time() - t:.1f} s")]


def vitl(slices: int, chunk: int, repeats: int) -> list[str]:
    """Rows of the ViT-L-14-336 @ 518 table (synthetic features, one layer of width 768)."""
    g = torch.Generator().manual_seed(0)
    tokens = 37 * 37
    opts = SearchOptions(window=0.1, chunk_bytes=chunk)
    query = [torch.randn(1, 1 + tokens, 768, generator=g)]
    qpos = torch.tensor([0.5])
    rows = []
    for k in (1, 4, 16):
        n = k * slices * tokens
        feats = torch.empty(1, n, 768, dtype=torch.float16)
        for s in range(0, n, 100_000):  # fill in pieces: no float32 copy of the whole bank
            e = min(n, s + 100_000)
            feats[0, s:e] = F.normalize(torch.randn(e - s, 768, generator=g), dim=-1).half()
        pos = torch.linspace(0, 1, slices).repeat_interleave(tokens).repeat(k).sort().values
        bank = PatchBank(feats, pos)
        window_rows = int(((pos >= 0.4) & (pos <= 0.6)).sum())
        search_s = _timed(lambda b=bank: reference_distance(query, qpos, b, opts), repeats)
        peak = _largest_alloc(lambda b=bank: reference_distance(query, qpos, b, opts))
        rows.append(
            f"| ViT-L-14-336 @ 518 | {k} | full | {n:,} | {bank.nbytes / MIB:.0f} | {window_rows:,} | "
            f"{search_s * 1000:.0f} | {peak / MIB:.2f} |"
        )
        del bank, feats
    return rows


def main() -> None:
    """Print the two Markdown tables for bench/RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=40, help="scored slices per reference study")
    ap.add_argument("--chunk-mib", type=float, default=64.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-vitl", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    chunk = int(a.chunk_mib * MIB)
    print(
        f"{date.today()} {platform.machine()} {platform.processor() or ''} torch {torch.__version__}, "
        f"{a.threads} thread(s), {a.slices} slices per reference study, window +-10 %, "
        f"chunk {a.chunk_mib:g} MiB"
    )
    print(
        "| model | K | bank | patches | bank MiB (fp16) | coreset time | encode ms/slice "
        "| zero-shot ms/slice | search ms/slice | blended score ms/slice | largest search alloc MiB |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in vitb(a.slices, chunk, a.repeats):
        print(r, flush=True)
    if not a.skip_vitl:
        print(
            "\n| geometry | K | bank | patches | bank MiB (fp16) | rows in window | search ms/slice "
            "| largest search alloc MiB |"
        )
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        for r in vitl(a.slices, chunk, 1):
            print(r, flush=True)


if __name__ == "__main__":
    main()
