"""``medzsad inspect PATH``: what medzsad finds in a folder, export, DICOMDIR or scan file."""

from __future__ import annotations

import argparse
import json
import sys

from medzsad import api

__all__ = ["register", "run_inspect"]

_DESCRIPTION = """\
Show what medzsad finds in PATH before a run: the studies and series (DICOM grouped by
StudyInstanceUID and SeriesInstanceUID; NIfTI, NRRD, MHA and PNG/JPEG files one study each),
which series would be chosen and why the others are not, and for the chosen series the
volume shape, voxel spacing, orientation code, value range (HU for CT) and any problems
(missing slices, non-uniform spacing, gantry tilt, mixed sizes). Files that are not scans
are listed with the reason.

examples:
  medzsad inspect /data/pacs_export
  medzsad inspect export.zip --json > found.json
  medzsad inspect /media/cdrom/DICOMDIR --no-load
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``inspect`` sub-command."""
    p = subparsers.add_parser(
        "inspect",
        help="list studies, series and the chosen series of a folder, zip, DICOMDIR or file",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH", help="folder, .zip archive, DICOMDIR or scan file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-load", action="store_true", help="read headers only; do not load the chosen series")
    p.add_argument(
        "--policy",
        choices=("error", "warn", "resample"),
        default="warn",
        help="what to do with DICOM geometry problems when loading (default: warn)",
    )
    p.set_defaults(handler=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    """Print the inspect report; exit 0."""
    report = api.inspect_path(args.path, load=not args.no_load, policy=args.policy)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.to_text() + "\n")
    return 0
