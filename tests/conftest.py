"""Shared test fixtures: the reference fixtures beside the checkout (``../shared/fixtures``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_fixtures_dir() -> Path:
    """``<root>/shared/fixtures`` next to the repository (CI clones with shared/ beside it)."""
    env = os.environ.get("MEDZSAD_SHARED_FIXTURES")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared" / "fixtures", REPO_ROOT / "shared" / "fixtures"]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        f"shared fixtures not found (looked in {[str(c) for c in candidates]}); "
        "clone the repo with shared/ beside it"
    )


@pytest.fixture(scope="session")
def reference_dirs() -> list[Path]:
    """Every AnomalyCLIP reference fixture folder (tiny_a and any later ones)."""
    root = shared_fixtures_dir() / "anomalyclip_reference"
    dirs = sorted(p for p in root.iterdir() if (p / "expected.safetensors").is_file())
    if not dirs:
        raise FileNotFoundError(f"no reference fixture folder under {root}")
    return dirs


@pytest.fixture(scope="session")
def tiny_a_dir() -> Path:
    """The ``tiny_a`` reference fixture."""
    return shared_fixtures_dir() / "anomalyclip_reference" / "tiny_a"
