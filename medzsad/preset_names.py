"""The names of the shipped preprocessing presets (``pipelines/*.yaml``), torch-free, and their check.

A preset name is checked where it enters (a cohort file's ``pipeline.preset``, ``--preset``), so a
misspelt name is a configuration error with "did you mean" before anything runs. What a preset
holds, and loading it, is :mod:`medzsad.transforms.preset`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

__all__ = ["pipelines_dir", "list_presets", "unknown_preset"]


def pipelines_dir() -> Path:
    """The preset folder.

    ``$MEDZSAD_PIPELINES`` when set; else ``pipelines/`` of the source checkout; else the copy a
    wheel installs as the ``medzsad.pipelines`` package data (``pyproject.toml`` maps it).
    """
    env = os.environ.get("MEDZSAD_PIPELINES")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[1] / "pipelines"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parents[0] / "pipelines"


def list_presets() -> list[str]:
    """Names of the presets in :func:`pipelines_dir`, sorted."""
    d = pipelines_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def unknown_preset(name: str) -> str | None:
    """Why ``name`` is not a preset (with "did you mean"), or ``None`` when it is one.

    ``auto`` and preset files (a path, or a name ending in ``.yaml``) are accepted here; a file is
    read, and checked, when a study is prepared with it.
    """
    if name == "auto" or name.endswith((".yaml", ".yml")) or os.sep in name or "/" in name:
        return None
    names = list_presets()
    if name in names:
        return None
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"no such preset {name!r}; {hint}(available: auto, {', '.join(names)})"
