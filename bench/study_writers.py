"""Cost of every per-study writer on one 512x512x300 CT DICOM study, as the pipeline calls them.

    python bench/study_writers.py [--size 512] [--slices 300] [--keep DIR] [--no-ortho]

One synthetic CT study (the series of ``bench/pipeline_throughput.py``) goes through the real
``run_cohort`` in-process (``workers: 0``) with every output (``formats: [nifti, png, html,
dicom-seg, dicom-pmap, dicom-sr, slicer]``) and the stand-in scorer (2.5 ms per slice). Each writer
function the study writer calls is wrapped with a timer (wall and process CPU seconds), as are the
post-processing steps that run in the writer stage (heat map assembly, lesions). The run's
``report.html`` is timed too (once per run, not per study).

``--no-ortho`` draws the overlay without its orthogonal views (the overlay before issue 21), to
measure what they cost.

Prints one Markdown table: step, wall s, CPU s, file size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline_throughput as pt  # noqa: E402

import medzsad.cohort.tables as tables  # noqa: E402
import medzsad.report.review_outputs as review_outputs  # noqa: E402
import medzsad.study.finish as study_job  # noqa: E402
import medzsad.study.outputs as study_writer  # noqa: E402
from medzsad.cohort.launch import run_cohort
from medzsad.cohort.options import RunOptions  # noqa: E402
from medzsad.config import load_cohort  # noqa: E402

TIMES: dict[str, list[tuple[float, float]]] = {}


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES.setdefault(name, []).append((time.perf_counter() - t0, time.process_time() - c0))

    return wrapper


WRAPPED = [
    (study_job, "assemble_heatmap", "post: heat map to source grid"),
    (study_job, "postprocess", "post: threshold + 3D components"),
    (study_writer, "write_heatmap", "heatmap.nii.gz"),
    (study_writer, "write_mask", "mask.nii.gz"),
    (study_writer, "slices_table", "slices table"),
    (study_writer, "lesions_table", "lesions table (HU statistics)"),
    (study_writer, "write_csv", "CSV files (slices, lesions)"),
    (study_writer, "_overlay", "overlay.png (render)"),
    (review_outputs, "write_dicom_seg", "DICOM SEG"),
    (review_outputs, "write_heatmap_parametric_map", "DICOM Parametric Map"),
    (review_outputs, "write_slicer_bundle", "Slicer bundle (.mrb)"),
    (review_outputs, "write_slicer_script", "Slicer script"),
    (study_writer, "_write_sr", "DICOM SR (TID 1500)"),
    (study_writer, "write_json", "provenance.json"),
    (tables, "write_review_page", "report.html (once per run)"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument("--no-ortho", action="store_true", help="overlay without the orthogonal views")
    args = ap.parse_args()
    if args.no_ortho:
        study_writer.ortho_points = lambda *a, **k: ()  # type: ignore[assignment]
    for module, attr, name in WRAPPED:
        if not hasattr(module, attr):
            raise SystemExit(f"{module.__name__}.{attr} not found: update WRAPPED")
        setattr(module, attr, _timed(name, getattr(module, attr)))
    root = args.keep or Path(tempfile.mkdtemp(prefix="medzsad-writers-"))
    data = root / f"dicom-{args.size}x{args.slices}-1"
    if not (data / "manifest.csv").exists():
        data.mkdir(parents=True, exist_ok=True)
        pt.write_cohort(data, "dicom", 1, args.size, args.slices)
    out = root / "out-writers"
    shutil.rmtree(out, ignore_errors=True)
    yaml = root / "writers.yaml"
    yaml.write_text(
        f"name: writers\ninputs:\n  manifest: {data / 'manifest.csv'}\n"
        "model: {tiny: true, clip_weights: random, prompt_weights: random, device: cpu, "
        "image_size: 518, batch_size: 32}\n"
        f"output:\n  dir: {out}\n  formats: [nifti, png, html, dicom-seg, dicom-pmap, dicom-sr, slicer]\n"
        "executor: {workers: 0}\n"
    )
    os.environ["MEDZSAD_BENCH_LOG"] = str(root / "writers-loader.jsonl")
    cfg = load_cohort(yaml)
    summary = run_cohort(cfg, RunOptions(progress="off"), scorer=pt.StandInScorer(518, 0.0025))  # type: ignore[arg-type]
    if summary.n_done != 1:
        raise SystemExit(f"the study did not finish: {summary}")
    folder = next((out / "studies").iterdir())
    sizes = {p.name: p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    print(f"\n{date.today()} | {args.size}x{args.size}x{args.slices} CT DICOM | {os.cpu_count()} cpu\n")
    print("| step | wall s | CPU s |")
    print("|---|---:|---:|")
    total_wall = total_cpu = 0.0
    for _module, _attr, name in WRAPPED:
        calls = TIMES.get(name, [])
        wall, cpu = sum(c[0] for c in calls), sum(c[1] for c in calls)
        total_wall += wall
        total_cpu += cpu
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")
    print(f"| **all steps** | {total_wall:.2f} | {total_cpu:.2f} |")
    print("\nfiles:", ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items())))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
