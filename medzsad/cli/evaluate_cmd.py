"""``medzsad evaluate``: the paper's metrics, curves and an operating point on a labelled dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medzsad.datasets.open import DATASET_KINDS
from medzsad.eval import api as eval_api
from medzsad.weights.model_loading import ModelSpec
from medzsad.weights.registry import DEFAULT_PROMPT_WEIGHTS


def add_model_arguments(
    p: argparse.ArgumentParser, default_prompts: str | None = DEFAULT_PROMPT_WEIGHTS
) -> None:
    """Options choosing the weights and how to run them (shared with ``benchmark``)."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--prompts",
        default=default_prompts,
        metavar="NAME|FILE",
        help=f"prompt weights: registry name, official .pth, medzsad checkpoint (default: {default_prompts})",
    )
    g.add_argument(
        "--clip",
        default=None,
        metavar="NAME|FILE",
        help="CLIP weights (default: the OpenAI weights of the backbone)",
    )
    g.add_argument(
        "--architecture", default=None, metavar="NAME", help="model architecture (default: from the prompts)"
    )
    g.add_argument(
        "--image-size", type=int, default=None, metavar="PX", help="input side in pixels (default 518)"
    )
    r = p.add_argument_group("runtime")
    r.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    r.add_argument(
        "--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="CUDA autocast precision"
    )
    r.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default: 8)")
    r.add_argument("--workers", type=int, default=0, help="data-loading processes (default: 0)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The :class:`ModelSpec` of the parsed options."""
    prompts = None if args.prompts in (None, "none") else args.prompts
    return ModelSpec(
        prompts=prompts, clip=args.clip, architecture=args.architecture, image_size=args.image_size
    )


def run_options(args: argparse.Namespace) -> eval_api.EvalOptions:
    """The :class:`~medzsad.eval.api.EvalOptions` of the parsed options."""
    return eval_api.EvalOptions(
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        num_workers=args.workers,
        progress=False if args.no_progress else None,
    )


def add_selection_arguments(p: argparse.ArgumentParser) -> None:
    """``--classes`` and ``--window``: which part of a dataset is used (train and evaluate)."""
    p.add_argument(
        "--classes", nargs="+", default=None, metavar="CLASS", help="only these MVTec/VisA classes"
    )
    p.add_argument(
        "--window",
        nargs=2,
        type=float,
        default=None,
        metavar=("LO", "HI"),
        help="intensity window of volume slices (--dataset-kind volumes), e.g. -160 240 HU",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` parser."""
    p = sub.add_parser(
        "evaluate",
        help="metrics, ROC/PR curves and an operating point on a labelled dataset",
        description=(
            "Score every image of a labelled dataset and report, per class and as the mean over classes, "
            "image AUROC/AP/F1-max and pixel AUROC/AUPRO (FPR <= 0.3)/F1-max/Dice/IoU, as in the "
            "AnomalyCLIP paper. Writes metrics.md/.csv/.json, scores.csv, roc.png, pr.png and "
            "histogram.png into --output, and prints the table and the chosen operating point."
        ),
        epilog="example: medzsad evaluate /data/mvtec --split test -o results/mvtec",
    )
    p.add_argument("data", type=Path, help="dataset folder (or CSV file with image,label[,mask,class])")
    p.add_argument(
        "--dataset-kind", default="auto", choices=DATASET_KINDS, help="layout of DATA (default: auto)"
    )
    p.add_argument("--split", default="test", help="MVTec/VisA split (default: test)")
    add_selection_arguments(p)
    p.add_argument(
        "-o", "--output", type=Path, default=None, metavar="DIR", help="folder for tables and plots"
    )
    p.add_argument(
        "--operating-point", default="f1", choices=("f1", "youden"), help="threshold choice (default: F1-max)"
    )
    p.add_argument(
        "--references",
        type=int,
        default=0,
        metavar="K",
        help="few-shot: K normal test images per class become references (left out of scoring); "
        "reports mean and std over 5 seeded draws (default: 0, zero-shot)",
    )
    add_model_arguments(p)
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    report = eval_api.evaluate(
        args.data,
        kind=args.dataset_kind,
        split=args.split,
        classes=args.classes,
        model=model_spec(args),
        run=run_options(args),
        out_dir=args.output,
        operating_point=args.operating_point,
        window=tuple(args.window) if args.window else None,
        references=args.references,
    )
    sys.stdout.write(report.to_text())
    return 0
