"""Read a scan the one way: discover -> choose the preset from the headers -> select -> load.

Used by ``medzsad run`` (:mod:`medzsad.study.reading`) and by training/evaluation on volumes
(:mod:`medzsad.datasets.volumes`), so both read the same series with the same preset:

1. a volume file (NIfTI, NRRD, a 2D image) is one series: it is loaded and the preset is chosen
   from its modality, or from its data when the file has none (:func:`guess_modality`);
2. a folder (or ``.zip``/DICOMDIR) is discovered. The preset is chosen from the modality,
   BodyPartExamined and SeriesDescription of the series ``base_rules`` pick (io's default rules
   plus the caller's overrides); without a modality in the headers (volume files) it is chosen
   from the loaded data instead;
3. the series is selected by the preset's ``series`` rules (already carrying the caller's
   overrides) and loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medzsad.errors import InputError
from medzsad.io.series_ref import SeriesRef
from medzsad.io.series_selection import SeriesRules, select_series
from medzsad.io.volume import Volume
from medzsad.transforms.preset import Preset, guess_modality

__all__ = ["PresetChooser", "PresetRead", "read_with_preset"]

#: ``(modality, body_part, description) -> Preset`` (the caller's preset rule and overrides).
PresetChooser = Callable[[str, str, str], Preset]


@dataclass(frozen=True)
class PresetRead:
    """A scan read with its preset.

    Attributes:
        volume: The loaded series.
        preset: The preset that selected the series and prepares it.
        body_part: BodyPartExamined of the series (``""`` when absent or a volume file).
        why: Why the series was chosen (``""`` for a volume file).
        candidates: Series in the study (1 for a volume file).
    """

    volume: Volume
    preset: Preset
    body_part: str = ""
    why: str = ""
    candidates: int = 1


def _is_volume_file(path: Path) -> bool:
    return path.is_file() and not path.name.lower().endswith(".zip") and path.name.upper() != "DICOMDIR"


def _header_series(series: list[SeriesRef], base_rules: SeriesRules) -> SeriesRef | None:
    """The series whose headers name the preset: ``base_rules``' pick, else the first image."""
    chosen = select_series(series, base_rules).chosen
    return chosen if chosen is not None else next((s for s in series if s.is_image), None)


def read_with_preset(
    path: str | os.PathLike[str],
    choose: PresetChooser,
    *,
    auto: bool,
    base_rules: SeriesRules | None = None,
    study_uid: str = "",
) -> PresetRead:
    """Read a scan and choose its preset (steps in the module docstring).

    Args:
        path: A volume file, or a folder/``.zip``/DICOMDIR holding one study.
        choose: Names the preset (with the caller's overrides) from modality, body part, description.
        auto: The preset depends on the headers (``preset: auto``); a fixed preset is chosen once.
        base_rules: Rules whose pick names an ``auto`` preset (default io's defaults).
        study_uid: Keep only this study of the folder (``""``: the folder must hold one).

    Raises:
        InputError: Unreadable input, several studies, or no series passing the preset's rules.
        ConfigError: Unknown preset or invalid override (from ``choose``).
    """
    from medzsad.io.discovery import discover
    from medzsad.io.readers import load_volume

    p = Path(path)
    if _is_volume_file(p):
        v = load_volume(p)
        return PresetRead(v, choose(guess_modality(v), "", v.source.series_description))
    base = base_rules or SeriesRules()
    discovery = discover(p)
    found = [s for s in discovery if not study_uid or s.study_uid == study_uid]
    if not found and discovery.skipped:
        first = discovery.skipped[0]
        raise InputError(
            f"{p}: holds no usable study; {len(discovery.skipped)} file(s) skipped, e.g. {first.path}: "
            f"{first.reason}"
        )
    if len(found) != 1:
        raise InputError(
            f"{p}: holds {len(found)} studies; list them separately (a manifest or one folder each)"
        )
    series = list(found[0].series)
    header = _header_series(series, base)
    preset: Preset | None = None
    if not auto or (header is not None and header.modality):
        h = header or SeriesRef("", "", "dicom", ())
        preset = choose(h.modality, h.body_part, h.description)
    selection = select_series(series, preset.series if preset is not None else base)
    chosen = selection.require(str(p))
    v = load_volume(chosen)
    if preset is None:  # no modality in the headers (volume files): decided from the data
        preset = choose(guess_modality(v), chosen.body_part, chosen.description)
    return PresetRead(v, preset, chosen.body_part, selection.reason, len(series))
