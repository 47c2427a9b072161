"""``medzsad demo-data DIR``: write the demo cohort (MNI152 NIfTI + DICOM, lesions, CT phantom)."""

from __future__ import annotations

import argparse
import sys

from medzsad import api
from medzsad.cli import EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo-data`` parser."""
    p = sub.add_parser(
        "demo-data",
        help="write the demo cohort (MNI152 brain as NIfTI and DICOM, synthetic lesions, CT phantom)",
        description=(
            "Write a small demo cohort from real anatomy, offline: the MNI152 T1 template shipped "
            "with nilearn as NIfTI and as a DICOM MR series, copies with spherical lesions of known "
            "centre and size (with masks, so the run reports its own metrics), and a CT-like phantom "
            "DICOM series in HU, plus DIR/manifest.csv. cohorts/demo.yaml reads 'demo-data/' "
            "next to the repository root (medzsad run cohorts/demo.yaml --smoke runs it offline)."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="folder to write (created)")
    p.add_argument(
        "--resolution", type=int, default=2, choices=(1, 2, 3, 4), help="MNI voxel size in mm (default 2)"
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    demo = api.write_demo_data(args.dir, resolution=args.resolution)
    sys.stdout.write(f"wrote {len(demo.studies)} studies to {demo.root} (manifest {demo.manifest})\n")
    return EXIT_OK
