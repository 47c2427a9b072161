"""``medzsad pull DEST``: fetch studies from a PACS (DICOMweb or DIMSE) into a folder, resumably."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from medzsad import api
from medzsad.cli import EXIT_CONFIG, EXIT_FAILED_STUDIES, EXIT_OK
from medzsad.cli._pacs_args import add_endpoint_options, endpoint_args


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``pull`` parser."""
    p = sub.add_parser(
        "pull",
        help="fetch studies from a PACS (DICOMweb or DIMSE C-FIND/C-GET) into a folder",
        description=(
            "Fetch studies into DEST/<StudyInstanceUID>/, either those a cohort file's inputs.dicomweb / "
            "inputs.dimse name (--cohort) or those given here (--study UID ... or --query KEY=VALUE ...). "
            "A pull that stopped half-way is completed, not repeated. --dry-run only asks the PACS what "
            "would be fetched (nothing is retrieved or written). Query keys are checked before any "
            "request (exit 2 for a misspelt or series-level key). Exit 3 when a study failed, 7 when "
            "the PACS refused our credentials or AE title or is no DICOMweb server (never retried)."
        ),
    )
    p.add_argument("dest", metavar="DEST", help="folder to fill (created)")
    p.add_argument("--cohort", metavar="YAML", help="pull what this cohort file's dicomweb/dimse inputs name")
    add_endpoint_options(p)
    p.add_argument(
        "--study", action="append", default=[], metavar="UID", help="StudyInstanceUID (repeatable)"
    )
    p.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="study-level query, e.g. ModalitiesInStudy=CT StudyDate=20260101-20260131 (repeatable)",
    )
    p.add_argument("--parallel", type=int, default=2, help="studies fetched at once (default 2)")
    p.add_argument(
        "--dry-run", action="store_true", help="only list the studies and instances a pull would fetch"
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if args.cohort:
        sources = api.pacs_cohort_sources(args.cohort)
    else:
        query = {}
        for item in args.query:
            key, sep, value = item.partition("=")
            if not sep:
                sys.stderr.write(f"medzsad pull: --query {item!r} is not KEY=VALUE\n")
                return EXIT_CONFIG
            query[key] = value
        endpoint = api.EndpointArgs(**endpoint_args(args))
        sources = [api.pacs_pull_source(endpoint, tuple(args.study), query, args.parallel)]
    failed = 0
    for source in sources:
        report = api.pull_studies(source, args.dest, dry_run=args.dry_run)
        failed += len(report.failed)
        sys.stdout.write(_dry_lines(report) if report.dry_run else _lines(report, failed))
    return EXIT_FAILED_STUDIES if failed else EXIT_OK


def _lines(report: Any, failed: int) -> str:
    out = []
    for s in report.studies:
        state = "ok" if s.ok else f"FAILED: {s.error}"
        out.append(f"{s.study_uid}  {s.n_instances} instances ({s.n_fetched} fetched now)  {state}\n")
    out.append(f"{report.endpoint}: {len(report.studies)} studies into {report.dest}, {failed} failed\n")
    return "".join(out)


def _dry_lines(report: Any) -> str:
    out, todo = [], 0
    for s in report.studies:
        if s.ok:
            todo += s.n_instances - s.n_present
            out.append(f"would pull {s.study_uid}  {s.n_instances} instances ({s.n_present} here already)\n")
        else:
            out.append(f"{s.study_uid}  FAILED: {s.error}\n")
    out.append(
        f"{report.endpoint}: dry run, {len(report.studies)} studies, {todo} instances would be fetched into "
        f"{report.dest}; nothing was retrieved\n"
    )
    return "".join(out)
