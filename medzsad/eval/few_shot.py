"""Few-shot evaluation as the literature reports it: K normal references drawn from the test set.

For each draw (seed), each class gets K normal images of its own test set as references (a bank of
their patch tokens); those images are then left out, and the rest are scored with the blended map
(:class:`~medzsad.model.reference_scoring.ReferenceDetector`). The paper metrics are computed per
draw; the report gives each draw's table and the mean and sample standard deviation over draws
(MVFA-AD and WinCLIP+ report few-shot results the same way, over several random draws).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from medzsad.datasets.images import SampleDataset
from medzsad.datasets.samples import Sample
from medzsad.errors import InputError
from medzsad.eval.evaluation import ALL_COLUMNS, metrics_table
from medzsad.eval.outputs import smoke_fields, smoke_line
from medzsad.eval.predict import Predictions, predict_samples
from medzsad.eval.table import COLUMN_TITLES, MetricsTable
from medzsad.fileio import ensure_dir, write_text
from medzsad.model.inference import Detector
from medzsad.model.reference_scoring import DEFAULT_WEIGHT, ReferenceDetector, bank_from_images
from medzsad.model.references import SearchOptions

__all__ = ["DEFAULT_SEEDS", "FewShotDraw", "FewShotReport", "evaluate_few_shot", "draw_references"]

#: Seeds of the default five draws.
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class FewShotDraw:
    """One draw of references.

    Attributes:
        seed: Seed of the draw.
        references: class -> indices (into the samples) of its references.
        table: Metrics over the remaining images.
    """

    seed: int
    references: dict[str, tuple[int, ...]]
    table: MetricsTable


@dataclass(frozen=True)
class FewShotReport:
    """Few-shot results over several draws.

    Attributes:
        k: References per class.
        weight: Weight ``w`` of the reference distance.
        draws: One :class:`FewShotDraw` per seed.
        files: Files written.
        smoke: Computed with random weights: the text and the JSON say so
            (:data:`~medzsad.eval.outputs.SMOKE_NOTE`).
    """

    k: int
    weight: float
    draws: tuple[FewShotDraw, ...]
    files: tuple[Path, ...] = field(default_factory=tuple)
    smoke: bool = False

    def summary(self) -> dict[str, tuple[float, float]]:
        """Metric -> (mean, sample std over draws) of the class-mean row (``nan`` where undefined)."""
        out: dict[str, tuple[float, float]] = {}
        for c in ALL_COLUMNS:
            vals = np.array([d.table.value("mean", c) for d in self.draws], dtype=np.float64)
            vals = vals[~np.isnan(vals)]
            mean = float(vals.mean()) if vals.size else math.nan
            std = float(vals.std(ddof=1)) if vals.size > 1 else math.nan
            out[c] = (mean, std)
        return out

    def to_text(self) -> str:
        """Markdown: mean +- std over draws, then each draw's value (percent, one decimal).

        Results of random weights start with the smoke marker line.
        """
        seeds = [d.seed for d in self.draws]
        lines = [
            smoke_line(self.smoke) + f"{self.k}-shot (normal references per class, w={self.weight:g}), "
            f"{len(seeds)} draws, seeds {seeds}",
            "| metric | mean | std | " + " | ".join(f"seed {s}" for s in seeds) + " |",
            "|---|---|---|" + "---|" * len(seeds),
        ]
        for c, (mean, std) in self.summary().items():
            per = [_pct(d.table.value("mean", c)) for d in self.draws]
            lines.append(
                f"| {COLUMN_TITLES.get(c, c)} | {_pct(mean)} | {_pct(std)} | " + " | ".join(per) + " |"
            )
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: smoke_run and note, k, weight, seeds, summary, per-draw references and tables."""
        return {
            **smoke_fields(self.smoke),
            "k": self.k,
            "weight": self.weight,
            "seeds": [d.seed for d in self.draws],
            "summary": {c: {"mean": _none(m), "std": _none(s)} for c, (m, s) in self.summary().items()},
            "draws": [
                {
                    "seed": d.seed,
                    "references": {c: list(v) for c, v in d.references.items()},
                    "table": d.table.to_dict(),
                }
                for d in self.draws
            ],
        }


def _pct(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v * 100:.1f}"


def _none(v: float) -> float | None:
    return None if math.isnan(v) else v


def draw_references(samples: Sequence[Sample], k: int, seed: int) -> dict[str, tuple[int, ...]]:
    """Per class, ``k`` indices of normal samples drawn with ``seed`` (by sorted image path).

    Raises:
        InputError: A class with no more than ``k`` normal images (none would be left to score).
    """
    normals: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        if s.label == 0:
            normals.setdefault(s.class_name, []).append(i)
    classes = sorted({s.class_name for s in samples})
    short = {c: len(normals.get(c, [])) for c in classes if len(normals.get(c, [])) <= k}
    if short:
        raise InputError(
            f"--references {k}: classes with <= {k} normal test images (none would be left to score): "
            f"{short}; lower --references"
        )
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[int, ...]] = {}
    for c in classes:
        ordered = sorted(normals[c], key=lambda i: str(samples[i].image))
        picked = rng.choice(len(ordered), size=k, replace=False)
        out[c] = tuple(sorted(ordered[int(j)] for j in picked))
    return out


def evaluate_few_shot(
    detector: Detector,
    samples: Sequence[Sample],
    k: int,
    *,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    weight: float = DEFAULT_WEIGHT,
    batch_size: int = 8,
    out_dir: Path | None = None,
    dataset: Dataset | None = None,
    progress: bool | None = None,
    smoke: bool = False,
) -> FewShotReport:
    """Score ``samples`` with ``k`` references per class for each seed (see module docstring).

    Files written into ``out_dir`` (when given): ``few_shot.md`` and ``few_shot.json``.

    Args:
        detector: The zero-shot model wrapper.
        samples: Labelled test images.
        k: References per class (``>= 1``).
        seeds: One draw per seed.
        weight: ``w`` of the blend.
        batch_size: Images per forward.
        out_dir: Output folder, or ``None``.
        dataset: Loader of ``samples`` (default 2D images).
        progress: Progress bar (``None``: on a terminal only).
        smoke: ``detector`` has random weights: the report and its files are marked so.

    Raises:
        InputError: ``k < 1``, no seed, or a class with too few normal images.
    """
    if k < 1 or not seeds:
        raise InputError(
            f"few-shot evaluation needs k >= 1 and at least one seed (got k={k}, seeds={list(seeds)})"
        )
    ds = (
        dataset
        if dataset is not None
        else SampleDataset(samples, detector.image_size, detector.mean, detector.std)
    )
    options = SearchOptions(window=1.0)  # 2D images carry no body coordinate
    draws = []
    for seed in seeds:
        refs = draw_references(samples, k, seed)
        parts = []
        for cls, ref_idx in refs.items():
            images = torch.stack([ds[i]["image"] for i in ref_idx])
            scorer = ReferenceDetector(detector, bank_from_images(detector, images), weight, options)
            keep = [i for i, s in enumerate(samples) if s.class_name == cls and i not in set(ref_idx)]
            parts.append(
                predict_samples(scorer, samples, batch_size, progress=progress, dataset=Subset(ds, keep))
            )
        draws.append(FewShotDraw(seed, refs, metrics_table(_merge(parts).per_class, ALL_COLUMNS)))
    report = FewShotReport(k, weight, tuple(draws), smoke=smoke)
    return report if out_dir is None else _written(report, out_dir)


def _written(report: FewShotReport, out_dir: Path) -> FewShotReport:
    """Write ``few_shot.md`` and ``few_shot.json``; the report with their paths."""
    out = ensure_dir(out_dir)
    write_text(out / "few_shot.md", report.to_text())
    write_text(out / "few_shot.json", json.dumps(report.to_dict(), indent=1, allow_nan=False))
    return replace(report, files=(out / "few_shot.md", out / "few_shot.json"))


def _merge(parts: Sequence[Predictions]) -> Predictions:
    per_class = {c: p for part in parts for c, p in part.per_class.items()}
    return Predictions(per_class, tuple(r for part in parts for r in part.images))
