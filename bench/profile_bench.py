"""Profile build overhead: time to build a profile vs time to score its normals.

    python bench/profile_bench.py [--studies 24] [--shape 128 128 48] [--repeats 2] [--device cpu]

Synthetic normals (NIfTI ellipsoid heads with texture) and the tiny random model (image size 56),
outputs [heatmap, provenance]. Paired runs in fresh folders:

- ``run``: ``run_cohort`` on the cohort (no profile section): scoring only.
- ``profile``: ``build_profile`` on the same cohort: scoring + per-study lesion statistic +
  ``profile.json`` + ``calibration.png``.

The tiny model makes scoring cheap, so the overhead fraction is pessimistic: with the ViT-L model a
slice costs far more while the calibration cost (lesion statistic, profile files) is unchanged.
Also printed: the in-run breakdown (``calibrate`` stage seconds from provenance, post-run seconds),
which is robust to machine noise.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from medzsad.cohort.launch import run_cohort
from medzsad.cohort.options import RunOptions
from medzsad.site_profile.builder import build_profile


def _volume(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.indices(shape).astype(np.float32)
    c = (np.array(shape, dtype=np.float32) - 1) / 2
    r = ((g - c[:, None, None, None]) / (np.array(shape)[:, None, None, None] * 0.42)) ** 2
    head = r.sum(0) <= 1.0
    return np.where(head, rng.uniform(0.85, 1.15) * (400 + 50 * rng.standard_normal(shape)), 0).astype(
        np.float32
    )


def _cohort(root: Path, n: int, shape: tuple[int, int, int], device: str) -> Path:
    rows = ["study_id,path"]
    for i in range(n):
        nib.save(nib.Nifti1Image(_volume(i, shape), np.diag([1.0, 1.0, 2.5, 1.0])), root / f"n{i}.nii.gz")
        rows.append(f"n{i:03d},n{i}.nii.gz")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    cohort = root / "normals.yaml"
    cohort.write_text(
        "name: bench-normals\ninputs: {manifest: manifest.csv}\n"
        "model: {tiny: true, clip_weights: random, prompt_weights: random, image_size: 56,"
        f" feature_layers: [2, 4], dpam_layers: 2, device: {device}, batch_size: 16}}\n"
        "output: {outputs: [heatmap, provenance], threshold: {method: fixed, min_lesion_ml: 0.1}}\n"
    )
    return cohort


def main() -> None:
    """Run the benchmark and print a Markdown table row per repeat."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--studies", type=int, default=24)
    ap.add_argument("--shape", type=int, nargs=3, default=(128, 128, 48))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    shape = tuple(args.shape)
    root = Path(tempfile.mkdtemp(prefix="profile-bench-"))
    try:
        cohort = _cohort(root, args.studies, shape, args.device)  # type: ignore[arg-type]
        print(f"{platform.machine()} {platform.processor() or ''}, {args.studies} studies of {shape}")
        print(
            "| repeat | order | run wall s | profile wall s | wall overhead | run CPU s | profile CPU s "
            "| CPU overhead | calibrate stage s | after-run s |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for rep in range(args.repeats):
            timings: dict[str, tuple[float, float]] = {}
            order = ("run", "profile") if rep % 2 == 0 else ("profile", "run")
            for what in order:
                w, c = time.perf_counter(), time.process_time()
                if what == "run":
                    run_cohort(cohort, RunOptions(progress="off", out_dir=str(root / f"run{rep}")))
                else:
                    res = build_profile(
                        cohort, options=RunOptions(progress="off", out_dir=str(root / f"prof{rep}"))
                    )
                timings[what] = (time.perf_counter() - w, time.process_time() - c)
            calib = sum(
                json.loads(p.read_text())["timings_s"].get("calibrate", 0.0)
                for p in (res.run.out_dir / "studies").glob("*/provenance.json")
            )
            (rw, rc), (pw, pc) = timings["run"], timings["profile"]
            print(
                f"| {rep} | {' then '.join(order)} | {rw:.2f} | {pw:.2f} | {100 * (pw / rw - 1):+.1f} % "
                f"| {rc:.2f} | {pc:.2f} | {100 * (pc / rc - 1):+.1f} % "
                f"| {calib:.2f} | {res.total_seconds - res.score_seconds:.2f} |"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
