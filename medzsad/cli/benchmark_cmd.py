"""``medzsad benchmark``: run a medical benchmark of the AnomalyCLIP paper and compare with Table 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medzsad import api
from medzsad.cli._model_args import add_model_arguments, model_spec, run_options


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` parser."""
    table = api.PAPER_TABLE2
    rows = ", ".join(f"{k} ({v.title})" for k, v in table.items())
    p = sub.add_parser(
        "benchmark",
        help="reproduce a row of the paper's medical table (Table 2)",
        description=(
            "Read a public medical anomaly-detection dataset in the layout of its release, score it with "
            "the official MVTec-trained AnomalyCLIP prompts (ViT-L/14@336, 518 px, layer 24, DPAM "
            "on the last 19 blocks, sigma 4) and print our numbers beside the paper's: image AUROC/AP "
            "for classification sets, "
            f"pixel AUROC/AUPRO for segmentation sets. Datasets: {rows}."
        ),
        epilog="example: medzsad benchmark --dataset brainmri /data/BrainMRI --device cuda",
    )
    p.add_argument("--dataset", required=True, choices=sorted(table), help="which benchmark")
    p.add_argument("data", type=Path, help="the dataset folder as unpacked from its public release")
    p.add_argument(
        "-o", "--output", type=Path, default=None, metavar="DIR", help="write benchmark_<name>.md/.json"
    )
    add_model_arguments(p)
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    report = api.benchmark(
        args.dataset, args.data, model=model_spec(args), run=run_options(args), out_dir=args.output
    )
    sys.stdout.write(report.to_text() + "\n" + report.table.to_markdown())
    return 0
