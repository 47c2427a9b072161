"""``medzsad slicer``: a 3D Slicer loader script for one study's results."""

from __future__ import annotations

import argparse
import sys

from medzsad import api


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``slicer`` parser."""
    p = sub.add_parser(
        "slicer",
        help="print (or write) a 3D Slicer script that opens one study's results",
        description=(
            "Read the Slicer bundle of a study output folder (written by 'medzsad run' with the "
            "'slicer' output format) and print a Python script for 3D Slicer that loads the scan, "
            "the anomaly heat map as a coloured overlay, the anomaly segmentation, and centres the "
            "views on the highest-scoring lesion. Run it with 'Slicer --python-script FILE' or "
            "paste it into Slicer's Python console. See docs/slicer.md for drag-and-drop."
        ),
    )
    p.add_argument(
        "study_dir",
        metavar="STUDY_DIR",
        help="a study output folder (RUN_DIR/studies/<id>, contains slicer/); a run folder lists its studies",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="write the script to FILE instead of printing it",
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    script = api.slicer_script(args.study_dir, output=args.output)
    if args.output is None:
        sys.stdout.write(script)
    else:
        sys.stdout.write(f"wrote {args.output}\n")
    return 0
