"""``medzsad profile NORMALS``: calibrate on a site's normal studies (see docs/calibration.md)."""

from __future__ import annotations

import argparse
import sys

from medzsad import api
from medzsad.cli import EXIT_OK, wrap
from medzsad.cli._lines import StudyLines

EPILOG = """\
examples:
  medzsad profile normals.yaml                  score the normals, write <output.dir>/profile/
  medzsad profile normals.yaml -o site-ct       write the profile folder site-ct/
  medzsad profile cohorts/demo-normals.yaml --smoke   the demo's profile, offline (tiny random model)

then, in a review cohort file:
  output:
    flag: {profile: site-ct, alpha: 0.05, control: fpr}          # studies.csv p_value, flagged
    threshold: {method: calibrated, profile: site-ct, alpha: 0.05, min_lesion_ml: 0.1}

exit codes: 0 profile written, 2 configuration error (too few normals in a stratum: the message
  says how many more), 4 input, 5 model/weights, 6 output (-o is a file, or a folder holding files
  that are not a medzsad profile's: refused before the model loads).

The profile folder is written whole or not at all: a failed build leaves no partial profile, and
a rebuild replaces an earlier profile in that folder only once the new one is complete.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``profile`` parser."""
    p = sub.add_parser(
        "profile",
        help="calibrate on normal studies: write a profile for flags and thresholds with guarantees",
        description=wrap(
            "Score a cohort file of studies known to be normal with the same code path as 'medzsad "
            "run' (resumable) and write a profile folder: profile.json (model and pipeline hashes, "
            "per-stratum study scores and lesion statistics) and calibration.png. Review cohorts use "
            "it through output.flag and output.threshold.method: calibrated."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("normals", metavar="NORMALS", help="cohort YAML file of normal studies")
    p.add_argument(
        "-o",
        "--out",
        default=None,
        metavar="DIR",
        help="profile folder (default: <output.dir>/profile): new, empty, or an earlier profile (replaced)",
    )
    p.add_argument("--run-dir", default=None, metavar="DIR", help="where the normals' run is written")
    p.add_argument("--device", default=None, help="override model.device: auto, cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="override model.batch_size")
    p.add_argument("--force", action="store_true", help="rescore normals that are already done")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="swap the model for the tiny random one: offline (review runs then need --smoke too)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output, warnings and errors only")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    options = api.RunOptions(
        force=args.force,
        device=args.device,
        batch_size=args.batch_size,
        out_dir=args.run_dir,
        progress="off" if args.quiet else "auto",
        smoke=args.smoke,
    )
    on_study = None if (args.quiet or sys.stderr.isatty()) else StudyLines()
    result = api.build_profile(args.normals, out_dir=args.out, options=options, on_study=on_study)
    if not args.quiet:
        p = result.profile
        sizes = ", ".join(f"{k}: n={s.n}" for k, s in sorted(p.strata.items()))
        sys.stdout.write(
            f"profile {p.name}: {p.n_studies} normals ({sizes}); {p.n_failed} failed"
            f" -> {result.profile_json}\n"
        )
    return EXIT_OK
