"""The stratum of a study: the fields a profile is split by (modality, manufacturer, model, preset).

Conformal guarantees hold for studies exchangeable with the calibration normals; splitting the
profile by scanner and protocol keeps each comparison within one population. A stratum key is a
stable string such as ``modality=CT|manufacturer=GE MEDICAL SYSTEMS``; no stratum fields give the
single key ``all``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["STRATUM_FIELDS", "ALL", "stratum_values", "stratum_key"]

#: Fields a profile can be stratified by (``profile.strata`` in a cohort file).
STRATUM_FIELDS = ("modality", "manufacturer", "model_name", "preset")
#: The key of the single stratum of an unstratified profile.
ALL = "all"


def stratum_values(
    modality: str, preset: str, manufacturer: str = "", model_name: str = ""
) -> dict[str, str]:
    """The stratum fields of one study (empty string when unknown, e.g. a NIfTI's manufacturer).

    Args:
        modality: DICOM Modality of the volume (``""`` for NIfTI).
        preset: Name of the preprocessing preset the study was run with.
        manufacturer: Manufacturer (0008,0070) as the loader read it (DICOM only).
        model_name: ManufacturerModelName (0008,1090) as the loader read it (DICOM only).
    """
    return {
        "modality": modality.strip().upper(),
        "manufacturer": manufacturer.strip(),
        "model_name": model_name.strip(),
        "preset": preset,
    }


def stratum_key(values: Mapping[str, Any], strata: Sequence[str]) -> str:
    """The key of a study in a profile stratified by ``strata`` (``"all"`` when unstratified)."""
    if not strata:
        return ALL
    return "|".join(f"{f}={values.get(f, '') or '?'}" for f in strata)
