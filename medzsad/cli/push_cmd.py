"""``medzsad push RUN_DIR``: send a run's DICOM SEG, Parametric Map and SR to a PACS, once."""

from __future__ import annotations

import argparse
import sys

from medzsad import api
from medzsad.cli import EXIT_FAILED_STUDIES, EXIT_OK
from medzsad.cli._pacs_args import add_endpoint_options, endpoint_args


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``push`` parser."""
    p = sub.add_parser(
        "push",
        help="send a run's DICOM outputs (SEG, Parametric Map, SR) to a PACS",
        description=(
            "Send the DICOM outputs of every finished study of RUN_DIR over DICOMweb (STOW-RS) or DIMSE "
            "(C-STORE). What was sent is recorded in RUN_DIR/ledger.sqlite, so a second push sends nothing "
            "new; failures are retried with backoff and listed in RUN_DIR/errors.csv (exit 3)."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="output folder of a 'medzsad run'")
    add_endpoint_options(p, retrieve=False)
    p.add_argument(
        "--what", default="seg,pmap,sr", help="objects to send, comma separated (default seg,pmap,sr)"
    )
    p.add_argument("--retries", type=int, default=3, help="extra attempts per study (default 3)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    what = tuple(w.strip() for w in args.what.split(",") if w.strip())
    destination = api.pacs_push_destination(api.EndpointArgs(**endpoint_args(args)), what, args.retries)
    report = api.push_run(args.run_dir, destination)
    sys.stdout.write(
        f"{report.endpoint}: {report.n_sent} objects sent, {report.n_already} sent before, "
        f"{len(report.failures)} {'study' if len(report.failures) == 1 else 'studies'} failed\n"
    )
    for f in report.failures:
        sys.stdout.write(f"  {f.study_id}: {f.error}\n")
    return EXIT_OK if report.ok else EXIT_FAILED_STUDIES
