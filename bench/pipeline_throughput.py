"""Pipeline throughput: synthetic 512x512x300 CT studies through the real cohort pipeline.

    nice python bench/pipeline_throughput.py --kind dicom --studies 4 --workers 1 [--latency-ms 2.5]
        [--image-size 518] [--slices 300] [--size 512] [--keep DIR] [--model standin|vitl]
        [--axes axial,coronal,sagittal] [--axis-stride 2]

The model is a stand-in scorer with the :class:`~medzsad.study.scorer.SliceScorer` interface that
sleeps ``latency-ms`` per slice (2.5 ms: ViT-L/14 at 518 px on an H200 in bf16) and returns
deterministic maps, so the figures show what the CPU stages (read, decode, preprocess, transfer
from the worker, post-process, write) cost around a GPU-speed model. Everything else is the real
``run_cohort``: worker processes, cross-study batches, writer processes, ledger, default outputs.
``--model vitl`` scores with the real detector instead (ViT-L/14-336 at ``--image-size``, random
weights, on the CPU): use few slices, it takes seconds per slice.

Prints one Markdown row: wall time, studies/hour, CPU seconds per study (all processes), the
per-stage breakdown (seconds per study, from provenance.json) and peak RSS (main process, worker),
and the slices scored per study on each axis (``--axes``: ``pipeline.axes``; ``--axis-stride``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from medzsad.cohort.launch import run_cohort
from medzsad.cohort.options import RunOptions
from medzsad.config import CohortConfig, load_cohort
from medzsad.datasets.demo_dicom import SeriesSpec, write_dicom_series
from medzsad.model.inference import DetectionResult
from medzsad.study.loading import Allocate, ModelInputSpec, default_loader
from medzsad.study.types import PreparedStudy, StudyInput

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class StandInScorer:
    """Sleeps ``latency_s`` per slice; maps and scores are cheap deterministic functions of the input."""

    def __init__(self, image_size: int, latency_s: float, n_layers: int = 4) -> None:
        self.image_size = image_size
        self.n_layers = n_layers
        self.mean = CLIP_MEAN
        self.std = CLIP_STD
        self.latency_s = latency_s
        self.calls = 0
        self.slices = 0

    def score(self, x: torch.Tensor, positions: torch.Tensor) -> DetectionResult:
        """``(B, 3, S, S)`` -> scores ``(B,)`` and maps ``(B, S, S)`` in [0, n_layers]."""
        self.calls += 1
        self.slices += int(x.shape[0])
        time.sleep(self.latency_s * int(x.shape[0]))
        maps = torch.sigmoid(x[:, 0]) * self.n_layers
        return DetectionResult(torch.sigmoid(x[:, 0].mean(dim=(1, 2))), maps, None)


def bench_loader(
    study: StudyInput, config: CohortConfig, spec: ModelInputSpec, allocate: Allocate | None = None
) -> PreparedStudy:
    """The default loader; appends the worker's pid, CPU seconds so far and peak RSS to a JSON-lines log.

    The log is ``$MEDZSAD_BENCH_LOG`` (workers inherit the environment); the study's series summary
    is a frozen record, so the figures travel beside it.
    """
    prepared = default_loader(study, config, spec, allocate)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    row = {"bench_pid": os.getpid(), "bench_cpu_s": ru.ru_utime + ru.ru_stime}
    row["bench_rss_mb"] = ru.ru_maxrss / 1024
    with open(os.environ["MEDZSAD_BENCH_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    return prepared


class ProcSampler:
    """Samples CPU seconds and peak RSS of every descendant process (workers, writers) from /proc."""

    def __init__(self) -> None:
        self.cpu_s: dict[int, float] = {}
        self.rss_mb: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ProcSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _descendants(self) -> list[int]:
        kids: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                kids.setdefault(ppid, []).append(int(d.name))
        out, todo = [], [os.getpid()]
        while todo:
            for k in kids.get(todo.pop(), []):
                out.append(k)
                todo.append(k)
        return out

    def _loop(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(0.25):
            for pid in self._descendants():
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                self.cpu_s[pid] = (int(fields[11]) + int(fields[12])) / tick
                hwm = [ln for ln in status.splitlines() if ln.startswith("VmHWM")]
                if hwm:
                    self.rss_mb[pid] = int(hwm[0].split()[1]) / 1024


def ct_volume(size: int, slices: int, seed: int) -> np.ndarray:
    """``(size, size, slices)`` stored values (HU + 1024): a noisy body ellipse in air, a bright lesion."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size].astype(np.float32)
    c = (size - 1) / 2
    body = ((x - c) / (0.42 * size)) ** 2 + ((y - c) / (0.32 * size)) ** 2 <= 1.0
    vol = np.empty((size, size, slices), dtype=np.uint16)
    base = np.where(body, 1024 + 40, 24).astype(np.float32)
    for k in range(slices):
        noise = rng.normal(0, 15, (size, size)).astype(np.float32)
        vol[:, :, k] = np.clip(base + noise * body, 0, 4095).astype(np.uint16).T
    vol[size // 2 : size // 2 + 20, size // 2 : size // 2 + 20, slices // 2 : slices // 2 + 10] = 1024 + 300
    return vol


def write_cohort(root: Path, kind: str, n: int, size: int, slices: int) -> Path:
    """Write ``n`` studies (the same volume content, distinct files and UIDs) and a manifest."""
    vol = ct_volume(size, slices, 0)
    affine_lps = np.diag([0.7, 0.7, 1.0, 1.0])
    rows = ["study_id,path"]
    for i in range(n):
        if kind == "dicom":
            spec = SeriesSpec("CT", f"bench-{i}", f"bench-study-{i}", rescale_intercept=-1024.0,
                              window_center=40, window_width=400)  # fmt: skip
            write_dicom_series(vol, affine_lps, root / f"ct{i:03d}", spec)
            rows.append(f"ct{i:03d},ct{i:03d}")
        else:
            hu = vol.astype(np.int16) - 1024
            nib.save(
                nib.Nifti1Image(hu, np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps), root / f"ct{i:03d}.nii.gz"
            )
            rows.append(f"ct{i:03d},ct{i:03d}.nii.gz")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def _stage_means(out: Path) -> tuple[dict[str, float], list[dict[str, object]]]:
    timings: dict[str, list[float]] = {}
    for p in sorted(out.glob("studies/*/provenance.json")):
        prov = json.loads(p.read_text())
        for k, v in prov["timings_s"].items():
            timings.setdefault(k, []).append(float(v))
    log = Path(os.environ["MEDZSAD_BENCH_LOG"])
    series = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    return {k: float(np.mean(v)) for k, v in timings.items()}, series


def _steady_rate(out: Path) -> float:
    """Studies/hour between the first and the last study finished (start-up excluded)."""
    with sqlite3.connect(out / "ledger.sqlite") as con:
        ends = sorted(t for (t,) in con.execute("SELECT finished_at FROM studies WHERE state = 'done'"))
    return 3600 * (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 and ends[-1] > ends[0] else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=["dicom", "nifti"], default="dicom")
    ap.add_argument("--studies", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--writers", type=int, default=1)
    ap.add_argument("--latency-ms", type=float, default=2.5)
    ap.add_argument("--model", choices=["standin", "vitl"], default="standin")
    ap.add_argument("--image-size", type=int, default=518)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--keep", type=Path, default=None, help="reuse/keep the data in this folder")
    ap.add_argument("--axes", default="axial", help="pipeline.axes, comma-separated")
    ap.add_argument("--axis-stride", type=int, default=2)
    args = ap.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="medzsad-pipe-"))
    data = root / f"{args.kind}-{args.size}x{args.slices}-{args.studies}"
    if not (data / "manifest.csv").exists():
        data.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        write_cohort(data, args.kind, args.studies, args.size, args.slices)
        print(f"wrote {args.studies} {args.kind} studies in {time.perf_counter() - t:.1f} s")
    axes = [a.strip() for a in args.axes.split(",") if a.strip()]
    out = root / f"out-{args.kind}-w{args.workers}-{'-'.join(axes)}-s{args.axis_stride}"
    shutil.rmtree(out, ignore_errors=True)
    yaml = root / "cohort.yaml"
    yaml.write_text(
        f"name: bench\ninputs:\n  manifest: {data / 'manifest.csv'}\n"
        f"pipeline: {{axes: [{', '.join(axes)}], axis_stride: {args.axis_stride}}}\n"
        f"model: {{{'tiny: true, ' if args.model == 'standin' else ''}clip_weights: random, "
        "prompt_weights: random, device: cpu, "
        f"image_size: {args.image_size}, batch_size: {args.batch_size}}}\n"
        f"output:\n  dir: {out}\n"
        f"executor: {{workers: {args.workers}, writers: {args.writers}}}\n"
    )
    cfg = load_cohort(yaml)
    os.environ["MEDZSAD_BENCH_LOG"] = str(root / f"loader-{args.kind}-w{args.workers}.jsonl")
    Path(os.environ["MEDZSAD_BENCH_LOG"]).unlink(missing_ok=True)
    # --model vitl: run_cohort builds the real detector (ViT-L/14-336 at image_size, random weights)
    scorer = StandInScorer(args.image_size, args.latency_ms / 1000) if args.model == "standin" else None
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    thread0 = time.thread_time()
    t0 = time.perf_counter()
    with ProcSampler() as procs:
        summary = run_cohort(cfg, RunOptions(progress="off"), scorer=scorer, loader=bench_loader)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    # the pipeline's own thread: the process total also counts this script's /proc sampler thread
    main_cpu = time.thread_time() - thread0
    process_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    stages, series = _stage_means(out)
    loaders = {int(x["bench_pid"]) for x in series}  # type: ignore[call-overload]
    worker_cpu = {p: c for p, c in procs.cpu_s.items() if p in loaders}
    writer_cpu = {p: c for p, c in procs.cpu_s.items() if p not in loaders and c > 1.0}  # not the fork server
    writer_rss = max((procs.rss_mb[p] for p in writer_cpu if p in procs.rss_mb), default=0.0)
    n = summary.n_done
    steady = _steady_rate(out)
    cpu_per_study = (main_cpu + sum(worker_cpu.values()) + sum(writer_cpu.values())) / max(n, 1)
    model_s = (
        args.latency_ms / 1000 * scorer.slices / max(n, 1) if scorer is not None else stages.get("score", 0.0)
    )
    first = sorted(out.glob("studies/*/slices.csv"))
    if first:
        import pandas as pd

        table = pd.read_csv(first[0])
        scored = (~table["skipped"]).groupby(table["axis"], sort=False).sum()
        print("slices scored per study: " + ", ".join(f"{a} {int(v)}" for a, v in scored.items()))
    print(
        f"{platform.machine()} {os.cpu_count()} cpu, torch {torch.__version__}; {n} done / {args.studies}; "
        f"model {args.model} {model_s:.2f} s/study"
    )
    print(
        "| kind | studies | workers | wall s | studies/h (steady) | CPU s/study (main + loaders + writers) "
        "| read | preprocess | score | postprocess | write (s/study) | peak RSS main / loader / writer |"
    )
    write_s = float(np.mean([o.seconds for o in summary.outcomes if o.status == "done"])) - sum(
        stages.values()
    )
    print(
        f"| {args.kind} | {n} | {args.workers} | {wall:.1f} | {3600 * n / wall:.0f} ({steady:.0f}) | "
        f"{cpu_per_study:.1f} ({main_cpu / max(n, 1):.1f} + {sum(worker_cpu.values()) / max(n, 1):.1f} + "
        f"{sum(writer_cpu.values()) / max(n, 1):.1f}) | "
        f"{stages.get('read', 0):.2f} | {stages.get('preprocess', 0):.2f} | {stages.get('score', 0):.2f} | "
        f"{stages.get('postprocess', 0):.2f} | {write_s:.2f} | "
        f"{ru1.ru_maxrss / 1024:.0f} / {max(float(x['bench_rss_mb']) for x in series):.0f} / "  # type: ignore[arg-type]
        f"{writer_rss:.0f} MiB |"
    )
    print(f"ceiling at 16 cores: {16 * 3600 / cpu_per_study:.0f} studies/h (CPU-bound, model not limiting)")
    per_main = main_cpu / max(n, 1)
    print(
        f"main thread: {per_main:.2f} CPU s/study; model stage {model_s:.2f} s/study. They overlap (the "
        f"model runs in its own thread): serial bound {3600 / max(per_main, model_s):.0f} studies/h; "
        f"without overlap {3600 / (per_main + model_s):.0f}; main process incl. the stand-in's map "
        f"computation and the sampler thread {process_cpu / max(n, 1):.2f} CPU s/study"
    )
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
