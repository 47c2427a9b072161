"""The stratum of a study: the fields a profile is split by (modality, manufacturer, model, preset).

Conformal guarantees hold for studies exchangeable with the calibration normals; splitting the
profile by scanner and protocol keeps each comparison within one population. A stratum key is a
stable string such as ``modality=CT|manufacturer=GE MEDICAL SYSTEMS``; no stratum fields give the
single key ``all``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["STRATUM_FIELDS", "ALL", "stratum_values", "stratum_key"]

log = logging.getLogger(__name__)

#: Fields a profile can be stratified by (``profile.strata`` in a cohort file).
STRATUM_FIELDS = ("modality", "manufacturer", "model_name", "preset")
#: The key of the single stratum of an unstratified profile.
ALL = "all"


def _dicom_scanner(path: str) -> tuple[str, str]:
    """``(Manufacturer, ManufacturerModelName)`` of one DICOM file, ``("", "")`` when unreadable."""
    import pydicom

    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["Manufacturer", "ManufacturerModelName"]
        )
    except Exception as e:  # the study was already read once; a vanished file only loses the stratum
        log.debug("cannot re-read scanner tags: %s", type(e).__name__)
        return "", ""
    return str(getattr(ds, "Manufacturer", "") or "").strip(), str(
        getattr(ds, "ManufacturerModelName", "") or ""
    ).strip()


def stratum_values(modality: str, preset: str, source_kind: str, first_path: str | None) -> dict[str, str]:
    """The stratum fields of one study (empty string when unknown, e.g. a NIfTI's manufacturer).

    Args:
        modality: DICOM Modality of the volume (``""`` for NIfTI).
        preset: Name of the preprocessing preset the study was run with.
        source_kind: ``"dicom"``, ``"nifti"``, ... (only DICOM carries the scanner tags).
        first_path: One source file; Manufacturer (0008,0070) and ManufacturerModelName
            (0008,1090) are read from it for DICOM.
    """
    manufacturer, model_name = ("", "")
    if source_kind == "dicom" and first_path:
        manufacturer, model_name = _dicom_scanner(first_path)
    return {
        "modality": modality.strip().upper(),
        "manufacturer": manufacturer,
        "model_name": model_name,
        "preset": preset,
    }


def stratum_key(values: Mapping[str, Any], strata: Sequence[str]) -> str:
    """The key of a study in a profile stratified by ``strata`` (``"all"`` when unstratified)."""
    if not strata:
        return ALL
    return "|".join(f"{f}={values.get(f, '') or '?'}" for f in strata)
