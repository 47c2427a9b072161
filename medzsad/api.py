"""Public Python API of medzsad; the command line is a thin shell over these functions."""

from __future__ import annotations

from medzsad.selftest import SelftestReport, run_selftest

__all__ = ["selftest", "SelftestReport"]


def selftest(reference_dir: str) -> SelftestReport:
    """Compare our AnomalyCLIP with a reference fixture folder (see :mod:`medzsad.selftest`)."""
    return run_selftest(reference_dir)
