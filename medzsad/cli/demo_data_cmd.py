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
            "DICOM series in HU, plus DIR/manifest.csv; and normal variants of the template for a site "
            "profile (DIR/normals.csv, docs/calibration.md). cohorts/demo.yaml and "
            "cohorts/demo-normals.yaml read 'demo-data/' next to the repository root "
            "(medzsad run cohorts/demo.yaml --smoke runs the demo offline)."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="folder to write (created)")
    p.add_argument(
        "--resolution", type=int, default=2, choices=(1, 2, 3, 4), help="MNI voxel size in mm (default 2)"
    )
    p.add_argument(
        "--normals",
        type=int,
        default=None,
        metavar="N",
        help="normal studies for a site profile (default 24: alpha 0.05 with 4 references; 0: none)",
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    extra = {} if args.normals is None else {"normals": args.normals}
    demo = api.write_demo_data(args.dir, resolution=args.resolution, **extra)
    sys.stdout.write(f"wrote {len(demo.studies)} studies to {demo.root} (manifest {demo.manifest})\n")
    if demo.normals_manifest is not None:
        sys.stdout.write(f"wrote {demo.n_normals} normal studies (manifest {demo.normals_manifest})\n")
    return EXIT_OK
