"""``medzsad evaluate``: the paper's metrics, curves and an operating point on a labelled dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medzsad import api
from medzsad.cli._model_args import (
    add_dataset_kind,
    add_model_arguments,
    add_selection_arguments,
    model_spec,
    run_options,
    window,
)

#: The flags of an evaluation without any weights (docs/training.md, "Offline smoke run").
SMOKE_FLAGS = "--clip random --prompts random --architecture anomalyclip_tiny"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` parser."""
    p = sub.add_parser(
        "evaluate",
        help="metrics, ROC/PR curves and an operating point on a labelled dataset",
        description=(
            "Score every image of a labelled dataset and report, per class and as the mean over classes, "
            "image AUROC/AP/F1-max and pixel AUROC/AUPRO (FPR <= 0.3)/F1-max/Dice/IoU, as in the "
            "AnomalyCLIP paper. Writes metrics.md/.csv/.json, scores.csv, roc.png, pr.png and "
            "histogram.png into --output, and prints the table and the chosen operating point. "
            "With random weights (--clip random, --prompts random or none) every output is marked "
            "'SMOKE RUN - random weights'; without any weights: "
            f"{SMOKE_FLAGS}. See docs/training.md."
        ),
        epilog="example: medzsad evaluate /data/mvtec --split test -o results/mvtec",
    )
    p.add_argument("data", type=Path, help="dataset folder (or CSV file with image,label[,mask,class])")
    add_dataset_kind(p)
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
    try:
        report = api.evaluate(
            args.data,
            kind=args.dataset_kind,
            split=args.split,
            classes=args.classes,
            model=model_spec(args),
            run=run_options(args),
            out_dir=args.output,
            operating_point=args.operating_point,
            window=window(args),
            references=args.references,
        )
    except api.ModelError as e:
        if args.clip == "random" and args.prompts in ("random", "none"):
            raise
        hint = f"Smoke run without any weights (meaningless scores): {SMOKE_FLAGS}"
        raise api.ModelError(f"{e}\n  {hint}") from e
    sys.stdout.write(report.to_text())
    return 0
