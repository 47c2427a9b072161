"""Cohort orchestration: cohort file -> studies -> volumes -> slices -> scores -> reports, with a ledger."""

from __future__ import annotations

from medzsad.cohort.demo_data import DemoCohort, write_demo_data
from medzsad.cohort.runner import RunOptions, RunSummary, StudyOutcome, run_cohort
from medzsad.config import CohortConfig, load_cohort

__all__ = [
    "CohortConfig",
    "DemoCohort",
    "RunOptions",
    "RunSummary",
    "StudyOutcome",
    "load_cohort",
    "run_cohort",
    "write_demo_data",
]
