"""``run_cohort``: the one entry point of a run (the API's and the command line's).

The run's settings are made final once (the cohort file, then the options: device, output folder,
``--smoke``), everything that could stop the run is checked (the output folder, the studies, the
weights and the device: :mod:`medzsad.cohort.preflight`, in seconds, before any model is loaded or
any file written), and only then is the run executed
(:func:`medzsad.cohort.runner.execute`). This module imports no model code, so a run that cannot
start says so without paying for loading torch, open_clip and MONAI.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from medzsad.calibration.operating_point import check_cohort
from medzsad.cohort.inputs import collect_studies
from medzsad.cohort.options import OnStudy, RunOptions, RunSummary, apply_options
from medzsad.cohort.preflight import (
    check_model,
    check_output_folder,
    check_output_outside_inputs,
    remove_unstarted,
)
from medzsad.config import CohortConfig, load_cohort
from medzsad.errors import ModelError
from medzsad.pacs.pull import query_only

if TYPE_CHECKING:
    from medzsad.study.loading import StudyLoader
    from medzsad.study.scorer import SliceScorer
    from medzsad.study.types import StudyInput

__all__ = ["run_cohort"]


def run_cohort(
    config: CohortConfig | str | Path,
    options: RunOptions | None = None,
    *,
    scorer: SliceScorer | None = None,
    loader: StudyLoader | None = None,
    on_study: OnStudy | None = None,
    studies: list[StudyInput] | None = None,
) -> RunSummary:
    """Run a cohort.

    Args:
        config: A :class:`CohortConfig` or the path of a cohort YAML file.
        options: Overrides (force, dry run, device, batch size, output dir, ids, progress, smoke).
        scorer: Model to use instead of building one from ``config.model`` (tests, notebooks).
        loader: Study loader instead of :func:`medzsad.study.loading.default_loader`.
        on_study: Called after every study with ``(outcome, index, total)`` (CLI progress lines).
        studies: The cohort's studies when the caller has listed them already with this cohort and
            these options (the profile builder: a PACS input is queried once); else listed here.

    Returns:
        :class:`RunSummary`; failed studies are in it, not raised.

    Raises:
        ConfigError: Invalid cohort file or options, or a profile that does not fit the cohort.
        InputError: An input does not exist, or the inputs name no study.
        ModelError: Weights missing (the message says how to get them) or the device is not here.
        OutputError: The output folder cannot be written or is in use by another run.
    """
    options = options or RunOptions()
    cfg = load_cohort(config) if isinstance(config, str | Path) else config
    cfg = apply_options(cfg, options)
    check_cohort(cfg)  # a profile that does not fit (hashes, alpha) is refused before any scoring
    check_output_outside_inputs(cfg)  # before discovery, which would read the outputs as studies
    if not options.dry_run:
        check_output_folder(cfg.out_dir)  # the cheapest check first
    if studies is None:
        with query_only(options.dry_run):  # a dry run asks a PACS what it would pull; it pulls nothing
            studies = collect_studies(cfg)  # no study: an input error, whatever the model
    if not options.dry_run and scorer is None:  # a dry run needs no model; a given one is the caller's
        check_model(cfg)
    from medzsad.cohort.runner import execute  # torch, open_clip and MONAI: only for a run that starts

    created = not options.dry_run and not cfg.out_dir.exists()
    try:
        return execute(cfg, studies, options, scorer=scorer, loader=loader, on_study=on_study)
    except ModelError:  # weights that fail to load: the run never started, it leaves no folder
        if created:
            remove_unstarted(cfg.out_dir)
        raise
