"""``medzsad selftest``: compare the model with tensors produced by the reference code."""

from __future__ import annotations

import argparse
import sys

from medzsad import api


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``selftest`` parser."""
    p = sub.add_parser(
        "selftest",
        help="check the model numerically against a reference fixture",
        description=(
            "Rebuild AnomalyCLIP from a reference fixture folder (CLIP weights, official prompt "
            "checkpoint, inputs and the tensors the reference code produced), run inference and one "
            "training step, and print max |delta| per tensor against the fixture's tolerances. "
            "Exits 1 if any tensor is out of tolerance."
        ),
    )
    p.add_argument(
        "--reference",
        required=True,
        metavar="DIR",
        help="fixture folder, e.g. ../shared/fixtures/anomalyclip_reference/tiny_a",
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    report = api.selftest(args.reference)
    sys.stdout.write(report.to_table() + "\n")
    return 0 if report.passed else 1
