"""Public Python API of medzsad; the command line is a thin shell over these names.

Names are resolved lazily (PEP 562 ``__getattr__``), so ``import medzsad.api`` is instant and
torch-free: ``medzsad weights list`` or ``medzsad --help`` never pay for loading torch.

Examples:
    >>> import medzsad.api as mz
    >>> summary = mz.run_cohort("cohorts/demo.yaml", mz.RunOptions(smoke=True))  # doctest: +SKIP
    >>> mz.selftest("../shared/fixtures/anomalyclip_reference/tiny_a").passed  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    # cohort runs (issue 4)
    "run_cohort": ("medzsad.cohort.launch", "run_cohort"),
    "RunOptions": ("medzsad.cohort.options", "RunOptions"),
    "RunSummary": ("medzsad.cohort.options", "RunSummary"),
    "StudyOutcome": ("medzsad.cohort.options", "StudyOutcome"),
    "load_cohort": ("medzsad.config", "load_cohort"),
    "single_study_cohort": ("medzsad.config.single_study", "single_study_cohort"),
    "list_presets": ("medzsad.preset_names", "list_presets"),
    "CohortConfig": ("medzsad.config", "CohortConfig"),
    "write_demo_data": ("medzsad.datasets.demo_data", "write_demo_data"),
    # scan input (issue 3)
    "discover": ("medzsad.io.discovery", "discover"),
    "inspect_path": ("medzsad.io.inspect", "inspect_path"),
    "inspect_scan": ("medzsad.transforms.preset_reading", "inspect_scan"),
    # weights (issue 2)
    "list_weights": ("medzsad.weights.manage", "list_weights"),
    "weights_path": ("medzsad.weights.manage", "weights_path"),
    "import_weights": ("medzsad.weights.import_file", "import_weights"),
    "fetch_weights": ("medzsad.weights.fetch", "fetch_weights"),
    "fetch_all_weights": ("medzsad.weights.fetch", "fetch_all"),
    "load_clip_weights": ("medzsad.weights.manage", "load_clip_weights"),
    "load_prompt_weights": ("medzsad.weights.manage", "load_prompt_weights"),
    "save_prompt_checkpoint": ("medzsad.weights.prompt_checkpoint", "save_prompt_checkpoint"),
    "load_prompt_checkpoint": ("medzsad.weights.prompt_checkpoint", "load_prompt_checkpoint"),
    "DEFAULT_CLIP_WEIGHTS": ("medzsad.weights.registry", "DEFAULT_CLIP_WEIGHTS"),
    "DEFAULT_PROMPT_WEIGHTS": ("medzsad.weights.registry", "DEFAULT_PROMPT_WEIGHTS"),
    # model (issue 2)
    "ModelSpec": ("medzsad.weights.model_loading", "ModelSpec"),
    "load_anomalyclip": ("medzsad.weights.model_loading", "load_anomalyclip"),
    "Detector": ("medzsad.model.inference", "Detector"),
    "SelftestReport": ("medzsad.selftest", "SelftestReport"),
    # training and evaluation (issue 5)
    "train": ("medzsad.training.api", "train"),
    "TrainConfig": ("medzsad.training.config", "TrainConfig"),
    "evaluate": ("medzsad.eval.api", "evaluate"),
    "evaluate_samples": ("medzsad.eval.api", "evaluate_samples"),
    "benchmark": ("medzsad.eval.api", "benchmark"),
    "EvalOptions": ("medzsad.eval.api", "EvalOptions"),
    # few-shot normal references (issue 10)
    "evaluate_few_shot": ("medzsad.eval.few_shot", "evaluate_few_shot"),
    "FewShotReport": ("medzsad.eval.few_shot", "FewShotReport"),
    "save_reference_bank": ("medzsad.references.bank_io", "save_bank"),
    "load_reference_bank": ("medzsad.references.bank_io", "load_bank"),
    # command-line facts and errors (issue 14): read at parser registration, torch-free
    "version": ("medzsad", "__version__"),
    "MedzsadError": ("medzsad.errors", "MedzsadError"),
    "ConfigError": ("medzsad.errors", "ConfigError"),
    "InputError": ("medzsad.errors", "InputError"),
    "ModelError": ("medzsad.errors", "ModelError"),
    "OutputError": ("medzsad.errors", "OutputError"),
    "PacsRefusedError": ("medzsad.errors", "PacsRefusedError"),
    "PacsSendError": ("medzsad.errors", "PacsSendError"),
    "TRAIN_CACHE_MODES": ("medzsad.training.config", "CACHE_MODES"),
    "TRAIN_ARCHITECTURE": ("medzsad.weights.model_loading", "TRAIN_ARCHITECTURE"),
    "PAPER_TABLE2": ("medzsad.eval.paper", "PAPER_TABLE2"),
    # review outputs (issue 6)
    "slicer_script": ("medzsad.report.slicer_bundle_script", "slicer_script"),
    "write_slicer_script": ("medzsad.report.slicer_bundle_script", "write_slicer_script"),
    # calibration on normal studies (issue 9)
    "build_profile": ("medzsad.site_profile.builder", "build_profile"),
    "load_profile": ("medzsad.calibration.profile_io", "load_profile"),
    "ProfileResult": ("medzsad.site_profile.builder", "ProfileResult"),
    # PACS in and out (issue 13)
    "pull_studies": ("medzsad.pacs.pull", "pull_studies"),
    "push_run": ("medzsad.cohort.push", "push_run"),
    "EndpointArgs": ("medzsad.pacs.endpoints", "EndpointArgs"),
    "pacs_pull_source": ("medzsad.pacs.endpoints", "pull_source"),
    "pacs_push_destination": ("medzsad.pacs.endpoints", "push_destination"),
    "pacs_cohort_sources": ("medzsad.pacs.endpoints", "cohort_sources"),
}

__all__ = sorted([*_EXPORTS, "selftest", "run_study"])


def selftest(reference_dir: str) -> Any:
    """Compare our AnomalyCLIP with a reference fixture folder (see :mod:`medzsad.selftest`).

    Returns:
        :class:`medzsad.selftest.SelftestReport`; ``.passed`` is the verdict, ``.to_table()`` the table.
    """
    from medzsad.selftest import run_selftest

    return run_selftest(reference_dir)


def run_study(path: str, *, out_dir: str, options: Any = None, **settings: Any) -> Any:
    """Run one study without a cohort file (``medzsad run -i PATH -o DIR``), as a cohort of one.

    Args:
        path: Scan file, DICOM folder, zip or DICOMDIR.
        out_dir: Output folder (the layout of a cohort run).
        options: :class:`RunOptions` (force, dry run, progress, ...).
        **settings: ``preset``, ``device``, ``formats``, ``fast``, ``smoke``, ``profile`` of
            :func:`medzsad.config.single_study.single_study_cohort`.

    Returns:
        :class:`RunSummary`, as :func:`run_cohort`.
    """
    from medzsad.cohort.launch import run_cohort
    from medzsad.config.single_study import single_study_cohort

    return run_cohort(single_study_cohort(path, out_dir=out_dir, **settings), options)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'medzsad.api' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
