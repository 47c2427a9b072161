"""``medzsad inspect PATH``: what medzsad finds in a folder, export, DICOMDIR or scan file."""

from __future__ import annotations

import argparse
import json
import sys

from medzsad import api
from medzsad.cli import EXIT_FAILED_STUDIES, EXIT_INPUT, EXIT_OK

__all__ = ["register", "run_inspect"]

_DESCRIPTION = """\
Show what medzsad finds in PATH before a run: the studies and series (DICOM grouped by
StudyInstanceUID and SeriesInstanceUID; NIfTI, NRRD, MHA and PNG/JPEG files one study each),
which series 'medzsad run -i PATH' would choose (the same rules: the preset's, named from the
headers) and why the others are not, and for the chosen series the volume shape, voxel spacing,
orientation code, value range (HU for CT) and any problems (missing slices, non-uniform spacing,
gantry tilt, mixed sizes). Files that are not scans are listed with the reason.

exit codes: 0 every study has a series that loads, 3 some study would fail (no series can be
scored, or the chosen one does not load), 4 PATH holds no study.

examples:
  medzsad inspect /data/pacs_export
  medzsad inspect export.zip --json > found.json
  medzsad inspect /media/cdrom/DICOMDIR --no-load
  medzsad inspect /data/head_ct --preset ct-head
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
    p.add_argument(
        "--preset",
        default="auto",
        help="the preset 'run --preset' would use; its series rules choose (default: auto, from the headers)",
    )
    p.add_argument("--no-load", action="store_true", help="read headers only; do not load the chosen series")
    p.add_argument(
        "--policy",
        choices=("error", "warn", "resample"),
        default="warn",
        help="what to do with DICOM geometry problems when loading (default: warn)",
    )
    p.set_defaults(handler=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    """Print the inspect report; exit 0 when every study would run, 3 when some would fail, 4 for none."""
    report = api.inspect_scan(args.path, preset=args.preset, load=not args.no_load, policy=args.policy)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.to_text() + "\n")
    if not report.studies:
        return EXIT_INPUT
    return EXIT_FAILED_STUDIES if report.n_failed else EXIT_OK
