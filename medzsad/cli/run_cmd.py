"""``medzsad run COHORT`` or ``medzsad run -i PATH -o DIR``: a cohort file, or one study without one."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from medzsad import api
from medzsad.cli import EXIT_FAILED_STUDIES, EXIT_OK, wrap
from medzsad.cli._lines import StudyLines

EPILOG = """\
examples:
  medzsad run cohorts/demo.yaml --device cuda    the demo with the default weights
  medzsad run cohorts/demo.yaml --smoke          offline: the demo with the tiny random model
  medzsad run my.yaml --dry-run                  list what would run, write nothing
  medzsad run my.yaml --force --out /data/rerun  recompute everything elsewhere
  medzsad run -i head.nii.gz -o out/             one study, no cohort file
  medzsad run -i /data/export.zip -o out/ --preset ct-head --formats nifti,dicom-seg,png --device cuda
  medzsad run -i head.nii.gz -o out/ --smoke     offline: the tiny random model, outputs marked SMOKE

one study (-i): PATH is a NIfTI/NRRD/MHA file, a DICOM folder, a .zip archive or a DICOMDIR; it is
  run as a cohort of that study, or of every study PATH holds (medzsad inspect PATH lists them; same
  code path, same outputs). --fast uses the backbone's native input size
  (336 px instead of 518; 56 px for --smoke) and skips slices with no body: faster, coarser maps.

outputs (in --out/-o, default reports/<name>/):
  studies/<id>/heatmap.nii.gz, mask.nii.gz, slices.csv, lesions.csv, overlay.png, provenance.json
  studies.csv, errors.csv, metrics.json (when the manifest has labels/masks), report.html,
  ledger.sqlite (the resume ledger: a rerun skips finished studies)

coming from TotalSegmentator: --statistics is lesions.csv (volume, centre, heat and scan
  intensities per lesion); --preview is overlay.png; mask.nii.gz holds lesion ids (1..n, the rows of
  lesions.csv; 0 background): --binary-mask (output.mask_values: binary) writes a 0/1 mask instead;
  --device gpu is cuda.

exit codes: 0 all studies done (warnings, e.g. missing slices, in studies.csv and on the terminal),
  3 some studies failed (the others completed; see errors.csv), 2 configuration error (the message
  names the file and line), 4 input, 5 model/weights, 6 output, 7 the PACS refused us, 130 interrupted.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` parser."""
    p = sub.add_parser(
        "run",
        help="run a cohort file, or one study with -i: score, write heat maps, masks and tables",
        description=wrap(
            "Run every study of a cohort file through the detector: discover and select series, "
            "load, preprocess, score slices in batches, assemble the heat map in the scan's own "
            "geometry, threshold it into lesions and write per-study files plus cohort tables. "
            "Interrupted runs resume where they stopped; finished studies are never recomputed "
            "unless --force. Study ids are hashed in the log unless --show-ids."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("cohort", metavar="COHORT", nargs="?", help="cohort YAML file (see docs/cohort.md)")
    p.add_argument("--device", default=None, help="override model.device: auto, cpu, cuda (or gpu), cuda:N")
    p.add_argument(
        "--batch-size", type=int, default=None, metavar="N", help="override model.batch_size (slices)"
    )
    p.add_argument(
        "-o",
        "--out",
        default=None,
        metavar="DIR",
        help="output directory (default: output.dir or reports/<name>)",
    )
    p.add_argument("--force", action="store_true", help="recompute studies that are already done")
    p.add_argument(
        "--dry-run", action="store_true", help="list the studies and what would run; write nothing"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output, warnings and errors only")
    p.add_argument(
        "--show-ids",
        action="store_true",
        default=None,
        help="show real study ids and failure paths in logs and on the terminal (files always use them)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="swap the model for the tiny random one: offline, no weights (every output marked SMOKE)",
    )
    _one_study_options(p)
    p.set_defaults(handler=_handle)


def _one_study_options(p: argparse.ArgumentParser) -> None:
    """The options of ``run -i PATH`` (one study without a cohort file)."""
    one = p.add_argument_group("one study without a cohort file")
    one.add_argument("-i", "--input", metavar="PATH", help="scan file, DICOM folder, zip or DICOMDIR")
    one.add_argument(
        "--preset",
        metavar="NAME",
        help=f"pipeline preset: auto (from the headers; default) or {', '.join(api.list_presets())}",
    )
    one.add_argument(
        "--formats", metavar="LIST", help="comma-separated output formats, e.g. nifti,dicom-seg,png"
    )
    one.add_argument("--profile", metavar="DIR", help="site calibration profile folder (medzsad profile)")
    one.add_argument("--fast", action="store_true", help="cheaper: native input size, empty slices skipped")
    one.add_argument(
        "--binary-mask",
        action="store_true",
        help="mask.nii.gz as 0/1 instead of lesion ids (output.mask_values)",
    )


def _config(args: argparse.Namespace) -> Any:
    """The cohort to run: the cohort file, or the in-memory cohort of ``-i`` (config errors fail fast)."""
    single_only = [f"--{k}" for k in ("preset", "formats", "profile") if getattr(args, k) is not None]
    single_only += [f"--{k.replace('_', '-')}" for k in ("fast", "binary_mask") if getattr(args, k)]
    if args.input is None:
        if args.cohort is None:
            raise api.ConfigError(
                "give a cohort file (medzsad run COHORT.yaml) or one study (-i PATH -o DIR)"
            )
        if single_only:
            raise api.ConfigError(f"{', '.join(single_only)}: only with -i PATH; set them in the cohort file")
        return api.load_cohort(args.cohort)
    if args.cohort is not None:
        raise api.ConfigError(f"give either a cohort file ({args.cohort}) or -i {args.input}, not both")
    if args.out is None:
        raise api.ConfigError(f"-i {args.input}: give the output folder with -o DIR")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()] if args.formats else None
    return api.single_study_cohort(
        args.input,
        out_dir=args.out,
        preset=args.preset,
        device=args.device,
        formats=formats,
        fast=args.fast,
        smoke=args.smoke,
        profile=args.profile,
        binary_mask=args.binary_mask,
    )


def _handle(args: argparse.Namespace) -> int:
    if args.batch_size is not None and args.batch_size < 1:
        raise api.ConfigError(f"--batch-size must be >= 1 (got {args.batch_size})")
    config = _config(args)
    tty = sys.stderr.isatty()
    options = api.RunOptions(
        force=args.force,
        dry_run=args.dry_run,
        show_ids=args.show_ids,
        device=args.device,
        batch_size=args.batch_size,
        out_dir=args.out,
        progress="off" if args.quiet else "auto",
        smoke=args.smoke,
    )
    on_study = None if (args.quiet or tty) else StudyLines()
    summary = api.run_cohort(config, options, on_study=on_study)
    return _report(summary, args.quiet)


def _report(summary: Any, quiet: bool) -> int:
    if summary.dry_run:
        for o in summary.outcomes:
            sys.stdout.write(f"{o.status:10s} {o.log_id}\n")
        n_run = sum(o.status == "would-run" for o in summary.outcomes)
        sys.stdout.write(f"{n_run} would run, {summary.n_skipped} already done -> {summary.out_dir}\n")
        return EXIT_OK
    n_out = summary.n_output_failures
    if not quiet:
        smoke = "  [SMOKE RUN - random weights]" if summary.smoke else ""
        unwritten = f", {n_out} optional output{'s' if n_out > 1 else ''} not written" if n_out else ""
        sys.stdout.write(
            f"done {summary.n_done}, skipped {summary.n_skipped}, failed {summary.n_failed}{unwritten}"
            f" -> {summary.studies_csv}{smoke}\n"
        )
    if n_out:  # the studies stand (exit 0 unless one failed): say where to look
        outputs = "output" if n_out == 1 else "outputs"
        sys.stderr.write(f"medzsad: {n_out} optional {outputs} not written; see {summary.errors_csv}\n")
    if summary.n_failed:
        studies = "study" if summary.n_failed == 1 else "studies"
        sys.stderr.write(f"medzsad: {summary.n_failed} {studies} failed; see {summary.errors_csv}\n")
        return EXIT_FAILED_STUDIES
    return EXIT_OK
