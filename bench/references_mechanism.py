"""Mechanism check of few-shot references (issue 10): do random-weight features find inserted lesions?

Synthetic MR studies from the MNI152 template (nilearn) with independent noise and intensity
jitter; K of them (no lesion) are the references; lesion studies get spherical lesions of random
centre (inside the brain), radius and sign of contrast. Each lesion study is scored with the tiny
random AnomalyCLIP, zero-shot and with references (w = 1: the reference map alone; blends with
w = 0.5 and 0.9), and the voxel AUROC of the heat map against the lesion mask is computed over
brain voxels of the scored slices. Nothing is trained; weights are random.

Usage: python bench/references_mechanism.py [--k 4] [--studies 6] [--delta 0.4] [--size 112]
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass
from datetime import date

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from medzsad.datasets.demo_data import Sphere, add_spheres, mni_template
from medzsad.io.volume import SourceInfo, Volume
from medzsad.model.inference import Detector
from medzsad.model.reference_scoring import ReferenceDetector, bank_from_images
from medzsad.model.references import SearchOptions, merge_banks
from medzsad.model.tiny import tiny_anomalyclip
from medzsad.references.positions import body_coordinates
from medzsad.transforms.pipeline import PreparedSlices, prepare_slices
from medzsad.transforms.preset import load_preset


@dataclass(frozen=True)
class Study:
    """One synthetic study through the mr-brain preset."""

    prepared: PreparedSlices
    positions: torch.Tensor
    mask: np.ndarray
    region: np.ndarray


def make_study(
    mni: np.ndarray, aff: np.ndarray, det: Detector, seed: int, spheres: tuple[Sphere, ...]
) -> Study:
    """Template x jitter + noise, lesions added, prepared for ``det``."""
    rng = np.random.default_rng(seed)
    data = np.clip(mni * rng.uniform(0.9, 1.1) + rng.normal(0, 15, mni.shape), 0, None).astype(np.float32)
    img, mask = add_spheres(data, aff, spheres, relative=True)
    prepared = prepare_slices(
        Volume(img, aff, "MR", SourceInfo(paths=(), kind="nifti")),
        load_preset("mr-brain"),
        det.image_size,
        det.mean,
        det.std,
    )
    pos = torch.from_numpy(body_coordinates(aff, prepared.source_axis, prepared.slice_index))
    scored = np.zeros(prepared.n_slices, dtype=bool)
    scored[prepared.slice_index] = True
    shape = [1, 1, 1]
    shape[prepared.source_axis] = prepared.n_slices
    region = np.broadcast_to(scored.reshape(shape), mni.shape) & (mni > 0.15 * mni.max())
    return Study(prepared, pos, mask, region)


def random_lesions(
    mni: np.ndarray, aff: np.ndarray, rng: np.random.Generator, delta: float
) -> tuple[Sphere, ...]:
    """Two spheres centred in brain voxels, radius 6-10 mm, one brighter and one darker by ``delta``."""
    inside = np.argwhere(mni > 0.4 * mni.max())
    out = []
    for sign in (1.0, -1.0):
        ijk = inside[rng.integers(len(inside))]
        ras = aff[:3, :3] @ ijk + aff[:3, 3]
        out.append(Sphere(tuple(float(v) for v in ras), float(rng.uniform(6, 10)), sign * delta))
    return tuple(out)


def heat(scorer: Detector | ReferenceDetector, study: Study, n_layers: int) -> np.ndarray:
    """Heat map in [0, 1] on the source grid (as the cohort runner makes it)."""
    if isinstance(scorer, ReferenceDetector):
        res = scorer.score(study.prepared.images, study.positions)
    else:
        res = scorer.score(study.prepared.images)
    return np.clip(study.prepared.to_volume(res.maps.numpy() / n_layers), 0, 1)


def run(
    k: int, n_studies: int, delta: float, size: int, resolution: int, seed: int
) -> dict[str, list[float]]:
    """Voxel AUROC per lesion study and pooled, for zero-shot, reference (w=1) and blends (w=0.5, 0.9)."""
    mni, aff = mni_template(resolution)
    det = Detector(tiny_anomalyclip(size, seed=seed))
    n_layers = len(det.model.config.feature_layers)
    refs = [make_study(mni, aff, det, 1000 + i, ()) for i in range(k)]
    bank = merge_banks([bank_from_images(det, s.prepared.images, s.positions) for s in refs])
    scorers: dict[str, Detector | ReferenceDetector] = {
        "zero-shot": det,
        "reference (w=1)": ReferenceDetector(det, bank, 1.0, SearchOptions(window=0.1)),
        "blend (w=0.5)": ReferenceDetector(det, bank, 0.5, SearchOptions(window=0.1)),
        "blend (w=0.9)": ReferenceDetector(det, bank, 0.9, SearchOptions(window=0.1)),
    }
    rng = np.random.default_rng(seed)
    per: dict[str, list[float]] = {name: [] for name in scorers}
    pooled: dict[str, list[np.ndarray]] = {name: [] for name in scorers}
    labels: list[np.ndarray] = []
    for i in range(n_studies):
        st = make_study(mni, aff, det, 2000 + i, random_lesions(mni, aff, rng, delta))
        labels.append(st.mask[st.region])
        for name, sc in scorers.items():
            h = heat(sc, st, n_layers)[st.region]
            per[name].append(float(roc_auc_score(labels[-1], h)))
            pooled[name].append(h)
    y = np.concatenate(labels)
    return {name: [float(roc_auc_score(y, np.concatenate(pooled[name]))), *per[name]] for name in scorers}


def main() -> None:
    """Print a Markdown table for bench/RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--studies", type=int, default=6)
    ap.add_argument("--delta", type=float, default=0.4)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--resolution", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    res = run(a.k, a.studies, a.delta, a.size, a.resolution, a.seed)
    print(
        f"{date.today()} {platform.machine()} tiny random AnomalyCLIP @ {a.size}, MNI {a.resolution} mm, "
        f"K={a.k} references, {a.studies} lesion studies (2 spheres, +-{a.delta:.0%}), window 0.1, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print("| map | pooled voxel AUROC | mean per-study AUROC | min | max |")
    print("|---|---:|---:|---:|---:|")
    for name, vals in res.items():
        per = np.array(vals[1:])
        print(f"| {name} | {vals[0]:.3f} | {per.mean():.3f} | {per.min():.3f} | {per.max():.3f} |")


if __name__ == "__main__":
    main()
