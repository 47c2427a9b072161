"""Options shared by ``evaluate``, ``benchmark`` and ``train``: weights, runtime, dataset selection.

Only :mod:`medzsad.api` and the standard library are imported here; values shown in ``--help``
come from torch-free modules through the API when the parser is built.
"""

from __future__ import annotations

import argparse
from typing import Any

from medzsad import api

#: Layouts ``--dataset-kind`` accepts; checked (with the benchmark names) by the dataset reader.
DATASET_KIND_HELP = (
    "layout of DATA: auto, mvtec, visa, folder, csv, volumes, or a benchmark name "
    "(see 'medzsad benchmark --help'); default: auto"
)


def add_dataset_kind(p: argparse.ArgumentParser) -> None:
    """``--dataset-kind`` (validated by the reader, so that building the parser stays torch-free)."""
    p.add_argument("--dataset-kind", default="auto", metavar="KIND", help=DATASET_KIND_HELP)


def add_model_arguments(p: argparse.ArgumentParser, with_default_prompts: bool = True) -> None:
    """Options choosing the weights and how to run them (``evaluate`` and ``benchmark``)."""
    default_prompts = api.DEFAULT_PROMPT_WEIGHTS if with_default_prompts else None
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
        help="CLIP weights (default: the backbone's OpenAI weights)",
    )
    g.add_argument(
        "--architecture", default=None, metavar="NAME", help="model architecture (default: from the prompts)"
    )
    g.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="PX",
        help="input side in pixels (default: the model's)",
    )
    r = p.add_argument_group("runtime")
    r.add_argument(
        "--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N (default: auto)"
    )
    r.add_argument(
        "--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="CUDA autocast precision"
    )
    r.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default: 8)")
    r.add_argument("--workers", type=int, default=0, help="data-loading processes (default: 0)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def model_spec(args: argparse.Namespace) -> Any:
    """The :class:`medzsad.api.ModelSpec` of the parsed options."""
    prompts = None if args.prompts in (None, "none") else args.prompts
    return api.ModelSpec(
        prompts=prompts, clip=args.clip, architecture=args.architecture, image_size=args.image_size
    )


def run_options(args: argparse.Namespace) -> Any:
    """The :class:`medzsad.api.EvalOptions` of the parsed options."""
    return api.EvalOptions(
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


def window(args: argparse.Namespace) -> tuple[float, float] | None:
    """``--window`` as a tuple, or ``None``."""
    return (args.window[0], args.window[1]) if args.window else None
