"""One study without a cohort file: ``medzsad run -i PATH -o DIR`` builds this in-memory cohort.

The result is an ordinary :class:`CohortConfig` (validated by the same models as a YAML file), so
a single study goes through exactly the code path and writes exactly the outputs of a cohort.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medzsad.config.cohort import COMMAND_LINE_SOURCE, CohortConfig
from medzsad.config.model import ModelConfig
from medzsad.config.yaml_loading import validate_cohort_data
from medzsad.errors import InputError

__all__ = ["single_study_cohort", "FAST_IMAGE_SIZE"]

#: ``--fast`` input side: 336 px is the native resolution of the default CLIP ViT-L/14@336 (518 px
#: is the paper's upsampled setting, ~2.4x the tokens); the smoke model halves its 112 px.
FAST_IMAGE_SIZE = {"model": 336, "smoke": 56}


def _cohort_name(path: Path) -> str:
    stem = path.resolve().parent.name if path.name.upper() == "DICOMDIR" else path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".zip"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).lstrip("._-")[:64]
    return name or "study"


def _profile_settings(folder: str) -> dict[str, Any]:
    """``output`` keys of a site calibration profile (``medzsad profile``).

    A calibrated lesion threshold and study flags with p-values, both at alpha 0.05.
    """
    return {"threshold": {"method": "calibrated", "profile": folder}, "flag": {"profile": folder}}


def single_study_cohort(
    path: str | Path,
    *,
    out_dir: str | Path,
    preset: str | None = None,
    device: str | None = None,
    formats: Sequence[str] | None = None,
    fast: bool = False,
    smoke: bool = False,
    profile: str | Path | None = None,
    binary_mask: bool = False,
) -> CohortConfig:
    """The cohort of one study.

    Args:
        path: A NIfTI/NRRD/MHA file, a DICOM folder, a ``.zip`` archive or a DICOMDIR.
        out_dir: Output folder (same layout as a cohort: ``studies/<id>/``, ``studies.csv``, ...).
        preset: Pipeline preset (``ct-head``, ...); default ``auto`` (from the headers).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; default ``auto``.
        formats: ``output.formats`` (``nifti``, ``dicom-seg``, ``png``, ...); default: the cohort default.
        fast: Cheaper setting: the backbone's native input size (:data:`FAST_IMAGE_SIZE`) instead
            of 518 px, and slices with no body skipped; maps are coarser, scores may shift.
        smoke: The tiny random-weight model (:data:`~medzsad.config.model.SMOKE_MODEL`): offline,
            outputs labelled smoke.
        profile: A site calibration profile folder (``medzsad profile``): flags and a calibrated mask.
        binary_mask: Write mask.nii.gz as 0/1 instead of lesion ids (``output.mask_values``).

    Raises:
        InputError: ``path`` does not exist.
        ConfigError: A value is invalid (the message names the option).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"-i {path}: no such file or folder; give a scan file, DICOM folder, zip, DICOMDIR")
    model: dict[str, Any] = {}
    if smoke:
        model = ModelConfig().smoke_swapped(FAST_IMAGE_SIZE["smoke"] if fast else None)
    elif fast:
        model["image_size"] = FAST_IMAGE_SIZE["model"]
    if device is not None:
        model["device"] = device
    output: dict[str, Any] = {"dir": str(Path(out_dir).expanduser().resolve())}
    if formats is not None:
        output["formats"] = list(formats)
    if profile is not None:
        output.update(_profile_settings(str(Path(profile).expanduser().resolve())))
    if binary_mask:
        output["mask_values"] = "binary"
    pipeline: dict[str, Any] = {"preset": preset or "auto", **({"skip_empty_slices": True} if fast else {})}
    data = {
        "name": _cohort_name(p),
        "inputs": {"paths": [str(p.resolve())]},
        "pipeline": pipeline,
        "model": model,
        "output": output,
        "base_dir": str(Path.cwd()),
        "source_file": f"{COMMAND_LINE_SOURCE}{path}",
    }
    return validate_cohort_data(data, f"medzsad run -i {path}", {})
