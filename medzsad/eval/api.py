"""Evaluation and benchmark entry points (called by ``medzsad evaluate`` and ``medzsad benchmark``)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from medzsad.analysis import metrics as M
from medzsad.datasets.images import SampleDataset
from medzsad.datasets.open import LabelledData, open_dataset, open_labelled
from medzsad.datasets.samples import Sample
from medzsad.errors import ConfigError, InputError
from medzsad.eval.evaluation import ALL_COLUMNS, ClassPredictions, metrics_table
from medzsad.eval.few_shot import FewShotReport, evaluate_few_shot
from medzsad.eval.outputs import is_random_weights, scores_csv, smoke_fields, smoke_line
from medzsad.eval.paper import PAPER_TABLE2, PaperResult
from medzsad.eval.plots import plot_curves, plot_histogram
from medzsad.eval.predict import Predictions, predict_samples
from medzsad.eval.table import MetricsTable
from medzsad.fileio import ensure_dir, write_text
from medzsad.model.inference import Detector
from medzsad.study.devices import resolve_device
from medzsad.weights.model_loading import ModelSpec, load_anomalyclip

__all__ = [
    "EvalOptions",
    "EvaluationReport",
    "BenchmarkReport",
    "evaluate",
    "evaluate_samples",
    "benchmark",
    "benchmark_samples",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOptions:
    """How to run the model.

    Attributes:
        device: ``auto`` (cuda when available, else cpu), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``bf16`` or ``fp16`` (the last two on CUDA only).
        batch_size: images per forward.
        num_workers: data-loading processes.
        progress: progress bar (``None``: on a terminal only).
    """

    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 8
    num_workers: int = 0
    progress: bool | None = None


@dataclass(frozen=True)
class EvaluationReport:
    """Result of an evaluation.

    Attributes:
        table: per-class metrics and their mean.
        operating_point: the chosen threshold and its rates.
        level: ``"image"`` or ``"pixel"``, the level of the operating point.
        files: files written.
        smoke: computed with random weights: every output says so
            (:data:`~medzsad.eval.outputs.SMOKE_NOTE`).
    """

    table: MetricsTable
    operating_point: M.OperatingPoint
    level: str
    files: tuple[Path, ...] = field(default_factory=tuple)
    smoke: bool = False

    def to_text(self) -> str:
        """The table and the operating point as text for a terminal (the smoke marker first)."""
        op = self.operating_point
        return (
            smoke_line(self.smoke)
            + self.table.to_markdown()
            + f"\noperating point ({self.level} level, {op.method}): threshold {op.threshold:.6g}, "
            f"sensitivity {op.sensitivity:.3f}, specificity {op.specificity:.3f}, "
            f"precision {op.precision:.3f}, F1 {op.f1:.3f}\n"
        )


@dataclass(frozen=True)
class BenchmarkReport:
    """Our numbers beside the paper's for one benchmark.

    Attributes:
        dataset: benchmark name.
        paper: the paper's Table 2 entry.
        ours: our values of the paper's two metrics, in [0, 1].
        table: the full per-class table.
        n_images: images read.
        smoke: computed with random weights: the text and the files say so.
    """

    dataset: str
    paper: PaperResult
    ours: tuple[float, float]
    table: MetricsTable
    n_images: int
    smoke: bool = False

    def to_text(self) -> str:
        """A small comparison table (percent, one decimal, as the paper prints)."""
        lines = [
            smoke_line(self.smoke) + f"{self.paper.title} ({self.n_images} images, {self.paper.level}-level)",
            "| metric | medzsad | paper | difference |",
            "|---|---|---|---|",
        ]
        for metric, ours, theirs in zip(self.paper.metric_titles, self.ours, self.paper.values):
            ours_pct = ours * 100
            diff = "n/a" if math.isnan(ours_pct) else f"{ours_pct - theirs:+.1f}"
            shown = "n/a" if math.isnan(ours_pct) else f"{ours_pct:.1f}"
            lines.append(f"| {metric} | {shown} | {theirs:.1f} | {diff} |")
        return "\n".join(lines) + "\n"


def _operating_point(preds: dict[str, ClassPredictions], method: str) -> tuple[M.OperatingPoint, str]:
    labels = np.concatenate([p.labels for p in preds.values()])
    if labels.min() != labels.max():
        scores = np.concatenate([p.scores for p in preds.values()])
        return M.operating_point(labels, scores, method), "image"
    with_masks = [p for p in preds.values() if p.masks is not None and p.maps is not None]
    if not with_masks:
        raise InputError(
            "cannot choose an operating point: all images share one label and no image has a mask"
        )
    masks = np.concatenate([p.masks for p in with_masks if p.masks is not None])
    maps = np.concatenate([p.maps for p in with_masks if p.maps is not None])
    return M.operating_point(masks, maps, method), "pixel"


def _write_outputs(
    out_dir: Path,
    predictions: Predictions,
    table: MetricsTable,
    op: M.OperatingPoint,
    level: str,
    smoke: bool,
) -> list[Path]:
    """Write the tables, scores and plots of an evaluation; all marked when ``smoke``."""
    out = ensure_dir(out_dir)
    write_text(out / "metrics.md", smoke_line(smoke) + table.to_markdown())
    table.to_csv(out / "metrics.csv", smoke=smoke)
    payload = {**smoke_fields(smoke), **table.to_dict(), "operating_point": {"level": level, **op._asdict()}}
    write_text(out / "metrics.json", json.dumps(payload, indent=1, allow_nan=False, default=_nan_none))
    write_text(out / "scores.csv", scores_csv(predictions, smoke))
    files = [out / n for n in ("metrics.md", "metrics.csv", "metrics.json", "scores.csv")]
    files += plot_curves(predictions.per_class, out / "roc.png", out / "pr.png", smoke=smoke)
    threshold = op.threshold if level == "image" else None
    files.append(plot_histogram(predictions.per_class, out / "histogram.png", threshold, smoke=smoke))
    return files


def evaluate_samples(
    detector: Detector,
    samples: Sequence[Sample],
    out_dir: Path | None = None,
    run: EvalOptions | None = None,
    operating_point: str = "f1",
    dataset: Dataset | None = None,
    *,
    smoke: bool = False,
) -> EvaluationReport:
    """Score labelled samples and compute the paper's metrics, curves and an operating point.

    Files written into ``out_dir`` (when given): ``metrics.md``, ``metrics.csv``, ``metrics.json``
    (table, operating point, F1-max thresholds per class), ``scores.csv`` (one row per image or
    volume slice, :data:`~medzsad.eval.outputs.SCORES_COLUMNS`), ``roc.png``, ``pr.png``,
    ``histogram.png``.

    Args:
        detector: the model wrapper.
        samples: labelled images.
        out_dir: output folder, or ``None`` to write nothing.
        run: batch size, workers and progress.
        operating_point: ``f1`` (F1-max) or ``youden``.
        dataset: loader of ``samples`` (default 2D images; e.g. volume slices).
        smoke: ``detector`` has random weights (:func:`~medzsad.eval.outputs.is_random_weights`):
            the report and every file written are marked "SMOKE RUN - random weights".

    Raises:
        InputError: no samples.
    """
    if not samples:
        raise InputError("no images to evaluate: the dataset is empty")
    run = run or EvalOptions()
    predictions = predict_samples(
        detector, samples, run.batch_size, run.num_workers, progress=run.progress, dataset=dataset
    )
    table = metrics_table(predictions.per_class, ALL_COLUMNS)
    op, level = _operating_point(predictions.per_class, operating_point)
    files = [] if out_dir is None else _write_outputs(out_dir, predictions, table, op, level, smoke)
    return EvaluationReport(table, op, level, tuple(files), smoke)


def _nan_none(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def _detector(model: ModelSpec, run: EvalOptions) -> Detector:
    return Detector(load_anomalyclip(model), device=resolve_device(run.device), precision=run.precision)


def evaluate(
    data: Path,
    *,
    kind: str = "auto",
    split: str = "test",
    classes: Sequence[str] | None = None,
    model: ModelSpec | None = None,
    run: EvalOptions | None = None,
    out_dir: Path | None = None,
    operating_point: str = "f1",
    window: tuple[float, float] | None = None,
    references: int = 0,
) -> EvaluationReport | FewShotReport:
    """Evaluate a model on any labelled dataset (see :func:`medzsad.datasets.open_dataset`).

    Args:
        data: dataset root or CSV file.
        kind: dataset layout (``auto``, ``mvtec``, ``visa``, ``folder``, ``csv`` or a benchmark name).
        split: MVTec/VisA split.
        classes: MVTec/VisA classes to keep.
        model: which weights (default the official MVTec-trained prompts).
        run: device, precision, batch size.
        out_dir: where to write tables and plots.
        operating_point: ``f1`` or ``youden``.
        window: intensity window of ``volumes`` slices, e.g. ``(-160, 240)`` HU.
        references: ``K > 0``: few-shot evaluation with K normal references per class drawn from the
            test set (left out of scoring), five seeded draws (:mod:`medzsad.eval.few_shot`).

    Results of random weights (``model`` with random CLIP or prompts) are marked as such in the
    report and in every file written (:mod:`medzsad.eval.outputs`).
    """
    run = run or EvalOptions()
    model = model or ModelSpec()
    smoke = is_random_weights(model)
    # 2D layouts are read (masks checked) before the model is built: a wrong dataset fails in a
    # second, not after loading the weights; volume slices need the model's input size first
    early = None if kind == "volumes" else open_dataset(Path(data), kind, split, classes)
    det = _detector(model, run)
    data_set = (
        LabelledData(early, SampleDataset(early, det.image_size, det.mean, det.std))
        if early is not None
        else open_labelled(Path(data), kind, det.image_size, det.mean, det.std, split, classes, window)
    )
    if references > 0:
        return evaluate_few_shot(
            det,
            data_set.samples,
            references,
            batch_size=run.batch_size,
            out_dir=out_dir,
            dataset=data_set.dataset,
            progress=run.progress,
            smoke=smoke,
        )
    return evaluate_samples(
        det, data_set.samples, out_dir, run, operating_point, data_set.dataset, smoke=smoke
    )


def benchmark_samples(
    name: str, detector: Detector, samples: Sequence[Sample], run: EvalOptions | None = None
) -> BenchmarkReport:
    """Compute the paper's two metrics of benchmark ``name`` on its samples.

    Raises:
        ConfigError: unknown benchmark.
        InputError: no samples.
    """
    key = name.lower()
    if key not in PAPER_TABLE2:
        raise ConfigError(f"unknown benchmark {name!r}; choose one of {sorted(PAPER_TABLE2)}")
    if not samples:
        raise InputError(f"benchmark {name}: no images read")
    paper = PAPER_TABLE2[key]
    run = run or EvalOptions()
    pixel = paper.level == "pixel"
    predictions = predict_samples(
        detector, samples, run.batch_size, run.num_workers, pixel_level=pixel, progress=run.progress
    )
    table = metrics_table(predictions.per_class, paper.columns)
    ours = (table.value("mean", paper.columns[0]), table.value("mean", paper.columns[1]))
    return BenchmarkReport(key, paper, ours, table, len(samples))


def benchmark(
    name: str,
    data: Path,
    *,
    model: ModelSpec | None = None,
    run: EvalOptions | None = None,
    out_dir: Path | None = None,
) -> BenchmarkReport:
    """Run a paper benchmark: read ``data`` in the dataset's public layout, score, compare with Table 2.

    Args:
        name: one of ``headct, brainmri, br35h, covid, isic, clinicdb, colondb, kvasir, endo, tn3k``.
        data: the dataset folder.
        model: which weights (default: the official MVTec-trained prompts and their settings).
        run: device, precision, batch size.
        out_dir: where to write ``benchmark_<name>.md`` and ``.json`` (optional).
    """
    from medzsad.datasets.benchmarks import read_benchmark

    samples = read_benchmark(name, Path(data))
    run = run or EvalOptions()
    spec = model or ModelSpec()
    report = benchmark_samples(name, _detector(spec, run), samples, run)
    report = replace(report, smoke=is_random_weights(spec))
    if out_dir is not None:
        out = ensure_dir(out_dir)
        write_text(
            out / f"benchmark_{report.dataset}.md", report.to_text() + "\n" + report.table.to_markdown()
        )
        payload = {
            **smoke_fields(report.smoke),
            "dataset": report.dataset,
            "unit": "percent",  # as the paper prints them; the table below is in [0, 1]
            "ours": [round(v * 100, 4) for v in report.ours],
            "paper": list(report.paper.values),
            "metrics": list(report.paper.columns),
            "weights": {
                "clip": str(spec.clip),
                "prompts": str(spec.prompts),
                "architecture": spec.architecture,
            },
            "table": report.table.to_dict(),
        }
        write_text(out / f"benchmark_{report.dataset}.json", json.dumps(payload, indent=1, default=_nan_none))
    return report
