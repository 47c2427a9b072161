"""One study without a cohort file: ``medzsad run -i PATH -o DIR`` builds this in-memory cohort.

The result is an ordinary :class:`CohortConfig` (validated by the same models as a YAML file), so
a single study goes through exactly the code path and writes exactly the outputs of a cohort.
"""

from __future__ import annotations

import json
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


#: The profile folder's file (:data:`medzsad.calibration.profile_io.PROFILE_FILE`, a layer above).
PROFILE_JSON = "profile.json"

#: ``model`` keys of the few-shot references, taken from the profile the study is flagged with.
_REFERENCE_KEYS = ("references", "reference_weight", "site_normalised")


#: alpha of the flags and of the calibrated threshold of ``-i --profile`` (or the profile's
#: ``alpha_min`` when it was built for a larger one only).
DEFAULT_ALPHA = 0.05


def _profile_settings(folder: str) -> dict[str, Any]:
    """``output`` keys of a site calibration profile (``medzsad profile``).

    A calibrated lesion threshold and study flags with p-values, both at :data:`DEFAULT_ALPHA`.
    """
    return {"threshold": {"method": "calibrated", "profile": folder}, "flag": {"profile": folder}}


def _mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return dict(value) if isinstance(value, dict) else {}


def _built_with(folder: str) -> dict[str, Any]:
    """The sections of the cohort a profile was built with, as far as its profile.json kept them.

    ``{"pipeline": ..., "model": ..., "study_score": ..., "min_lesion_ml": ...}``, each present only
    when kept; ``{}`` for a file that cannot be read (the run's profile check then says why).
    """
    try:
        data = json.loads((Path(folder) / PROFILE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    settings = _mapping(data, "settings")
    model = _mapping(settings, "model")
    out: dict[str, Any] = {"model": {k: model[k] for k in _REFERENCE_KEYS if k in model}}
    if not model and isinstance(data.get("references"), dict):  # kept no settings: it has a bank
        out["model"] = {"references": True}
    if _mapping(settings, "pipeline_section"):
        out["pipeline"] = _mapping(settings, "pipeline_section")
    if _mapping(_mapping(settings, "pipeline"), "study_score"):
        out["study_score"] = _mapping(_mapping(settings, "pipeline"), "study_score")
    if isinstance(data.get("min_lesion_ml"), int | float):
        out["min_lesion_ml"] = data["min_lesion_ml"]
    if isinstance(data.get("alpha_min"), int | float):
        out["alpha_min"] = data["alpha_min"]
    return out


def _model(smoke: bool, fast: bool, device: str | None) -> dict[str, Any]:
    """The ``model`` section of ``-i``: the default model, or the smoke one, at ``--fast`` size."""
    model: dict[str, Any] = {}
    if smoke:
        model = ModelConfig().smoke_swapped(FAST_IMAGE_SIZE["smoke"] if fast else None)
    elif fast:
        model["image_size"] = FAST_IMAGE_SIZE["model"]
    if device is not None:
        model["device"] = device
    return model


def _use_profile(folder: str, model: dict[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    """Flag and threshold with the profile in ``folder``, with the settings it was built with.

    Updates ``model`` (few-shot references) and ``output`` in place; returns the profile's
    ``pipeline`` section (``{}`` when it kept none).
    """
    output.update(_profile_settings(folder))
    built = _built_with(folder)
    model.update(built.get("model", {}))
    if "study_score" in built:
        output["study_score"] = built["study_score"]
    if "min_lesion_ml" in built:
        output["threshold"]["min_lesion_ml"] = built["min_lesion_ml"]
    if built.get("alpha_min", 0.0) > DEFAULT_ALPHA:  # the smallest alpha its normals support
        output["threshold"]["alpha"] = output["flag"]["alpha"] = built["alpha_min"]
    return dict(built.get("pipeline", {}))


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
        profile: A site calibration profile folder (``medzsad profile``): flags and a calibrated
            mask, with the pipeline, study score, ``min_lesion_ml`` and references it was built with.
        binary_mask: Write mask.nii.gz as 0/1 instead of lesion ids (``output.mask_values``).

    Raises:
        InputError: ``path`` does not exist.
        ConfigError: A value is invalid (the message names the option).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"-i {path}: no such file or folder; give a scan file, DICOM folder, zip, DICOMDIR")
    model = _model(smoke, fast, device)
    output: dict[str, Any] = {"dir": str(Path(out_dir).expanduser().resolve())}
    if formats is not None:
        output["formats"] = list(formats)
    # with a profile, the settings it was built with, so that it fits the study
    built = _use_profile(str(Path(profile).expanduser().resolve()), model, output) if profile else {}
    if binary_mask:
        output["mask_values"] = "binary"
    pipeline = {
        "preset": "auto",
        **built,
        **({"preset": preset} if preset else {}),
        **({"skip_empty_slices": True} if fast else {}),
    }
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
