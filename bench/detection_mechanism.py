"""Detection mechanism on real anatomy (issue 21): random weights, synthetic lesions, the scoring modes.

Random weights measure the *mechanism* (does a map respond to a change of appearance against normal
anatomy?), not clinical accuracy: a trained model is needed for that.

Two anatomies, each through its preset: nilearn's MNI152 T1 template at 4 mm (`mr-brain`) and the
CT phantom of the demo (`ct-abdomen`, HU). Every study is the anatomy with independent noise and
intensity jitter (MR: x0.9-1.1 and noise sd 15 of 1000; CT: +-10 HU and noise sd 10 HU). K of
them are the references (one bank per axis and, for maps in site units, each reference compared with
the others for the statistics), as ``medzsad profile`` builds them. Lesion studies get two lesions
of random shape (sphere or irregular blob of 3 overlapping spheres), size (radius 4-12 mm),
contrast (MR x(1 +- 0.15..0.5), CT +-20..80 HU; brighter or darker) and texture (half of them
modulated by smooth noise), at random positions inside the organ. Normal studies are further
normals (not references).

Every study goes through the study's own functions (slices of every axis -> the one batch loop ->
heat on the source grid -> fusion -> study score), with the defaults unless the mode says
otherwise. Metrics, per anatomy and seed (model weights, noise and lesions): voxel AUROC and AUPRO
(FPR <= 0.3) of the heat against the lesion masks over the organ's voxels in the scored slices
(pooled over the lesion studies), and the study AUROC of lesion vs normal studies with the default
study score (max slice) and with ``top_volume`` (1 mL).

One more row is a bound, not a mode: the same search on the windowed voxels themselves (tiles of
the model's patch footprint, Euclidean distance to the nearest reference tile, no model; its study
score is the maximum over the body). It says whether a nearest-normal-patch search can find these
lesions at this footprint at all, so that a gap to it is the features', not the lesions'.

Usage: python bench/detection_mechanism.py [--seeds 0 1 2] [--k 4] [--lesions 6] [--normals 6]
       [--size 112] [--anatomies mni ct] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from types import SimpleNamespace

import numpy as np
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from medzsad.analysis.aupro import aupro_regions
from medzsad.analysis.lesions import voxel_volume_ml
from medzsad.config import PipelineConfig, StudyScoreRule
from medzsad.datasets.demo_data import ct_phantom, mni_template
from medzsad.io.volume import SourceInfo, Volume
from medzsad.model.inference import Detector
from medzsad.model.references import PatchBank, SearchOptions, merge_banks
from medzsad.model.site_units import NormalStats, leave_one_out_stats
from medzsad.model.tiny import tiny_anomalyclip
from medzsad.study.loading import prepare_study_slices
from medzsad.study.postprocess import assemble_heatmap, scored_region, slice_scores, study_score
from medzsad.study.reading import StudyRead
from medzsad.study.scorer import ModelScorer, ReferenceScorer, ScorerInfo, SliceScorer
from medzsad.study.scoring import encode_study, score_study
from medzsad.study.types import PreparedStudy, SeriesSummary, StudyInput
from medzsad.transforms.pipeline import intensity_range
from medzsad.transforms.preset import load_preset

THREE = ("axial", "coronal", "sagittal")
WINDOW = 0.1  # model.reference_window default
WEIGHT = 0.5  # model.reference_weight default
MODES = (
    "zero-shot, 1 axis",
    "zero-shot, 3 axes",
    "references, raw blend w=0.5 (issue 10)",
    "site units, zero-shot term (w=0)",
    "site units, blend w=0.5 (default)",
    "site units, blend w=0.5, 3 axes",
)
METRICS = ("voxel AUROC", "AUPRO", "study AUROC (max slice)", "study AUROC (top 1 mL)")
CEILING = "bound: nearest reference patch on the windowed pixels (no model)"
ROWS = (*MODES, CEILING)


@dataclass(frozen=True)
class Anatomy:
    """An anatomy: template, its affine, preset and how a normal study and a lesion are made."""

    name: str
    base: np.ndarray
    affine: np.ndarray
    modality: str
    preset: str
    organ: np.ndarray  # where lesions go and where voxel metrics count
    normal: Callable[[np.random.Generator], np.ndarray]
    relative: bool  # lesions multiply (MR) or add HU (CT)
    contrast: tuple[float, float]


def mni_anatomy() -> Anatomy:
    mni, aff = mni_template(4)

    def normal(rng: np.random.Generator) -> np.ndarray:
        return np.clip(mni * rng.uniform(0.9, 1.1) + rng.normal(0, 15, mni.shape), 0, None).astype(np.float32)

    return Anatomy(
        "MNI152 T1 (4 mm)", mni, aff, "MR", "mr-brain", mni > 0.15 * mni.max(), normal, True, (0.15, 0.5)
    )


def ct_anatomy() -> Anatomy:
    ct, aff = ct_phantom()
    body = ct > -500

    def normal(rng: np.random.Generator) -> np.ndarray:
        jitter = rng.uniform(-10, 10) + rng.normal(0, 10, ct.shape)
        return np.where(body, ct + jitter, ct).astype(np.float32)

    organ = ndimage.binary_erosion(body & (ct < 300), iterations=3)
    return Anatomy("CT phantom (3x3x4 mm)", ct, aff, "CT", "ct-abdomen", organ, normal, False, (20.0, 80.0))


def _ball(ijk: np.ndarray, centre: np.ndarray, radius: float, zooms: np.ndarray) -> np.ndarray:
    return (((ijk - centre) * zooms) ** 2).sum(-1) <= radius**2


def add_lesions(
    img: np.ndarray, a: Anatomy, rng: np.random.Generator, n: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` lesions of random shape, size, contrast sign and texture inside the organ."""
    zooms = np.linalg.norm(a.affine[:3, :3], axis=0)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in img.shape], indexing="ij"), axis=-1).astype(np.float32)
    inside = np.argwhere(ndimage.binary_erosion(a.organ, iterations=2))
    out, mask = img.copy(), np.zeros(img.shape, dtype=bool)
    for _ in range(n):
        centre, radius = inside[rng.integers(len(inside))].astype(np.float32), float(rng.uniform(4, 12))
        if rng.random() < 0.5:
            les = _ball(ijk, centre, radius, zooms)
        else:  # an irregular blob: overlapping spheres around the centre
            les = np.zeros(img.shape, dtype=bool)
            for _ in range(3):
                offset = rng.uniform(-0.6, 0.6, 3) * radius / zooms
                les |= _ball(ijk, centre + offset, radius * rng.uniform(0.5, 0.8), zooms)
        les &= a.organ
        size = rng.uniform(*a.contrast) * rng.choice([-1.0, 1.0])
        delta = np.full(img.shape, size, dtype=np.float32)
        if rng.random() < 0.5:  # textured: smooth noise modulates the change
            noise = ndimage.gaussian_filter(rng.normal(0, 1, img.shape), 1.0)
            delta *= 1.0 + 0.5 * (noise / (noise.std() + 1e-6)).astype(np.float32)
        out[les] = out[les] * (1.0 + delta[les]) if a.relative else out[les] + delta[les]
        mask |= les
    return out.astype(np.float32), mask


def prepare(data: np.ndarray, a: Anatomy, spec: SimpleNamespace, axes: tuple[str, ...]) -> PreparedStudy:
    """The study's slices on ``axes`` (default stride for the extra axes), as ``medzsad run`` cuts them."""
    volume = Volume(data, a.affine, a.modality, SourceInfo(paths=(), kind="nifti"))
    summary = SeriesSummary("bench", "", a.modality, "", 1, a.preset)
    read = StudyRead(volume, summary, load_preset(a.preset), axes[1:], PipelineConfig().axis_stride)
    return prepare_study_slices(StudyInput("bench", "bench"), read, spec)  # type: ignore[arg-type]


def heat_and_scores(prepared: PreparedStudy, scorer: SliceScorer) -> tuple[np.ndarray, float, float]:
    """Heat map on the source grid (fused), the default study score and the top-1-mL score."""
    scored = score_study(prepared, scorer, 16)
    scores = slice_scores(scored.image_scores, scored.maps)
    heat = assemble_heatmap(prepared, scored.maps, PipelineConfig().fusion)
    region, vox = scored_region(prepared), voxel_volume_ml(prepared.volume.affine_ras)
    default = study_score(scores, heat, StudyScoreRule(), region, vox)
    top = study_score(scores, heat, StudyScoreRule(method="top_volume", volume_ml=1.0), region, vox)
    return heat, default, top


def references(
    refs: list[np.ndarray], a: Anatomy, det: Detector, base: ModelScorer, axes: tuple[str, ...]
) -> tuple[dict[str, PatchBank], dict[str, NormalStats]]:
    """One bank per axis from the K references and the site statistics (as medzsad profile does)."""
    per_study: dict[str, list[PatchBank]] = {}
    for data in refs:
        for axis, bank in encode_study(prepare(data, a, det, axes), base, 16).items():  # type: ignore[arg-type]
            per_study.setdefault(axis, []).append(bank)
    options = SearchOptions(window=WINDOW)
    banks = {axis: merge_banks(b) for axis, b in per_study.items()}
    return banks, {axis: leave_one_out_stats(b, options) for axis, b in per_study.items()}


def pixel_distance(
    data: np.ndarray, refs: list[np.ndarray], a: Anatomy, size: int, patch: int = 14
) -> np.ndarray:
    """A bound, not a mode: PatchCore on the windowed voxels of axial slices, no model.

    Each axial slice is cut into square tiles of the model's patch footprint (``patch`` px of
    ``size`` px, in source voxels); a tile's value is its Euclidean distance to the nearest tile
    of the references' slices within the default window of body levels, bilinearly upsampled to
    the voxel grid. It says whether the lesions are detectable by a nearest-normal-patch search at
    this footprint at all. Every study here is one anatomy in one position, which a cohort of
    patients is not: this is not a candidate method.
    """
    preset = load_preset(a.preset)
    p = max(1, round(patch * max(data.shape[:2]) / size))

    def tiles(v: np.ndarray) -> torch.Tensor:  # (K, tiles, p*p) of the axial slices (k last)
        lo, hi = intensity_range(Volume(v, a.affine, a.modality, SourceInfo(paths=(), kind="nifti")), preset)
        t = torch.from_numpy(np.clip((v - lo) / (hi - lo), 0, 1)).float().permute(2, 0, 1)[:, None]
        t = torch.nn.functional.pad(t, (0, (-t.shape[-1]) % p, 0, (-t.shape[-2]) % p))
        return torch.nn.functional.unfold(t, p, stride=p).transpose(1, 2)

    bank, query = [tiles(r) for r in refs], tiles(data)
    n_k, reach = data.shape[2], max(1, round(WINDOW * data.shape[2]))
    grid = (-(-data.shape[0] // p), -(-data.shape[1] // p))
    out = []
    for k in range(n_k):
        near = torch.cat([b[max(0, k - reach) : k + reach + 1].reshape(-1, b.shape[-1]) for b in bank])
        out.append(torch.cdist(query[k], near).amin(dim=1).reshape(grid))
    up = torch.nn.functional.interpolate(
        torch.stack(out)[:, None], size=(grid[0] * p, grid[1] * p), mode="bilinear", align_corners=False
    )
    return up[:, 0].permute(1, 2, 0).numpy()[: data.shape[0], : data.shape[1]]


def aupro_in(masks: list[np.ndarray], heats: list[np.ndarray], regions: list[np.ndarray]) -> float:
    """AUPRO (FPR <= 0.3) counting only region voxels: each 3D lesion component is one region.

    :func:`medzsad.analysis.aupro.aupro_regions` on 1D samples: one sample of every study's normal
    region voxels, and one all-lesion sample per 3D connected component (26-connectivity).
    """
    samples_m, samples_a = [], []
    for m, h, r in zip(masks, heats, regions, strict=True):
        samples_m.append(np.zeros(int((r & ~m).sum()), dtype=bool))
        samples_a.append(h[r & ~m])
        labels, n = ndimage.label(m & r, structure=np.ones((3, 3, 3)))
        for c in range(1, n + 1):
            comp = labels == c
            samples_m.append(np.ones(int(comp.sum()), dtype=bool))
            samples_a.append(h[comp])
    return aupro_regions(samples_m, samples_a)


def run_anatomy(
    a: Anatomy, seed: int, k: int, n_lesion: int, n_normal: int, size: int
) -> dict[str, dict[str, float]]:
    """Every metric of every mode for one anatomy and seed."""
    rng = np.random.default_rng(seed)
    det = Detector(tiny_anomalyclip(size, seed=seed))
    base = ModelScorer(det, len(det.model.config.feature_layers), ScorerInfo("tiny random", "bench"))
    refs = [a.normal(rng) for _ in range(k)]
    banks1, stats1 = references(refs, a, det, base, ("axial",))
    banks3, stats3 = references(refs, a, det, base, THREE)
    ids = tuple(f"r{i}" for i in range(k))
    scorers: dict[str, tuple[SliceScorer, tuple[str, ...]]] = {
        MODES[0]: (base, ("axial",)),
        MODES[1]: (base, THREE),
        MODES[2]: (ReferenceScorer(base, banks1, WEIGHT, WINDOW, ids), ("axial",)),
        MODES[3]: (ReferenceScorer(base, banks1, 0.0, WINDOW, ids, stats=stats1), ("axial",)),
        MODES[4]: (ReferenceScorer(base, banks1, WEIGHT, WINDOW, ids, stats=stats1), ("axial",)),
        MODES[5]: (ReferenceScorer(base, banks3, WEIGHT, WINDOW, ids, stats=stats3), THREE),
    }
    studies = [add_lesions(a.normal(rng), a, rng) for _ in range(n_lesion)]
    studies += [(a.normal(rng), np.zeros(a.base.shape, dtype=bool)) for _ in range(n_normal)]
    labels = [1] * n_lesion + [0] * n_normal
    found: dict[str, dict[str, list]] = {m: {"heat": [], "default": [], "top": []} for m in ROWS}
    masks, regions = [], []
    for data, mask in studies:
        cut = {axes: prepare(data, a, det, axes) for axes in (("axial",), THREE)}
        masks.append(mask)
        body = np.asarray(scored_region(cut[("axial",)]))
        regions.append(body & a.organ)
        found[CEILING]["heat"].append(pixel_distance(data, refs, a, size))
        found[CEILING]["default"].append(float(found[CEILING]["heat"][-1][body].max()))
        found[CEILING]["top"].append(float("nan"))
        for mode, (scorer, axes) in scorers.items():
            heat, default, top = heat_and_scores(cut[axes], scorer)
            found[mode]["heat"].append(heat)
            found[mode]["default"].append(default)
            found[mode]["top"].append(top)
    out: dict[str, dict[str, float]] = {}
    for mode, f in found.items():
        heats = f["heat"][:n_lesion]
        y = np.concatenate([m[r] for m, r in zip(masks[:n_lesion], regions[:n_lesion])])
        s = np.concatenate([h[r] for h, r in zip(heats, regions[:n_lesion])])
        out[mode] = {
            METRICS[0]: float(roc_auc_score(y, s)),
            METRICS[1]: aupro_in(masks[:n_lesion], heats, regions[:n_lesion]),
            METRICS[2]: float(roc_auc_score(labels, f["default"])),
            METRICS[3]: float("nan") if mode == CEILING else float(roc_auc_score(labels, f["top"])),
        }
    return out


def main() -> None:
    """Print Markdown tables (mean +- sd over seeds) for bench/RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--lesions", type=int, default=6)
    ap.add_argument("--normals", type=int, default=6)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--anatomies", nargs="+", default=["mni", "ct"], choices=["mni", "ct"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    makers = {"mni": mni_anatomy, "ct": ct_anatomy}
    print(
        f"{date.today()} {platform.machine()}, {args.threads} torch thread(s); tiny random AnomalyCLIP @ "
        f"{args.size} px; K={args.k} references; {args.lesions} lesion + {args.normals} normal studies per "
        f"anatomy and seed; seeds {args.seeds}; defaults: window {WINDOW}, w {WEIGHT}, stride "
        f"{PipelineConfig().axis_stride}, fusion {PipelineConfig().fusion}"
    )
    for name in args.anatomies:
        a = makers[name]()
        runs = [run_anatomy(a, s, args.k, args.lesions, args.normals, args.size) for s in args.seeds]
        print(f"\n{a.name}: mean +- sd over {len(runs)} seeds ({time.perf_counter() - t0:.0f} s so far)\n")
        print("| mode | " + " | ".join(METRICS) + " |")
        print("|---|" + "---:|" * len(METRICS))
        for mode in ROWS:
            cells = []
            for metric in METRICS:
                v = np.array([r[mode][metric] for r in runs])
                cells.append("-" if np.isnan(v).all() else f"{v.mean():.3f} +- {v.std():.3f}")
            print(f"| {mode} | " + " | ".join(cells) + " |")
        for s, r in zip(args.seeds, runs, strict=True):
            print(
                f"seed {s}: "
                + "; ".join(f"{m}: " + ", ".join(f"{v:.3f}" for v in r[m].values()) for m in ROWS)
            )


if __name__ == "__main__":
    main()
