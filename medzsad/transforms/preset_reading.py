"""Read a scan the one way: discover -> choose the preset from the headers -> select -> load.

Used by ``medzsad run`` (:mod:`medzsad.study.reading`), by training/evaluation on volumes
(:mod:`medzsad.datasets.volumes`) and by ``medzsad inspect`` (:func:`inspect_scan`), so all of
them choose the same series with the same preset. A single file, a folder, a ``.zip`` and a
DICOMDIR take the same road:

1. the path is discovered (:func:`medzsad.io.discovery.discover`): a DICOM file, a folder, a
   zip or a DICOMDIR gives its studies and series from the headers; a NIfTI/NRRD/2D image file
   is one study with one series;
2. :func:`plan_study` names the preset from the modality, BodyPartExamined and SeriesDescription
   of the series ``base_rules`` pick (io's default rules plus the caller's overrides) and selects
   the series by the preset's ``series`` rules (already carrying the caller's overrides); without
   a modality in the headers (volume files) the preset is chosen from the loaded data instead;
3. the chosen series is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import medzsad.errors
from medzsad.errors import InputError
from medzsad.io.dicom_common import LoadPolicy
from medzsad.io.discovery import Discovery, StudyRef, discover
from medzsad.io.inspect import InspectReport, inspect_path
from medzsad.io.readers import load_volume
from medzsad.io.series_ref import SeriesRef
from medzsad.io.series_selection import Selection, SeriesRules, select_series
from medzsad.io.volume import Volume
from medzsad.transforms.preset import Preset, auto_preset_name, guess_modality, load_preset

__all__ = [
    "PresetChooser",
    "PresetRead",
    "StudyPlan",
    "plan_study",
    "find_study",
    "read_with_preset",
    "inspect_scan",
]

#: ``(modality, body_part, description) -> Preset`` (the caller's preset rule and overrides).
PresetChooser = Callable[[str, str, str], Preset]


@dataclass(frozen=True)
class PresetRead:
    """A scan read with its preset.

    Attributes:
        volume: The loaded series.
        preset: The preset that selected the series and prepares it.
        body_part: BodyPartExamined of the series (``""`` when absent or a volume file).
        why: Why the series was chosen, the fallback included (``""`` for a volume file).
        candidates: Series in the study (1 for a volume file).
        fallback: The ranking rule the chosen series misses (``no axial series; used coronal #3
            CT 'COR'``), ``""`` when it passes every rule.
    """

    volume: Volume
    preset: Preset
    body_part: str = ""
    why: str = ""
    candidates: int = 1
    fallback: str = ""


@dataclass(frozen=True)
class StudyPlan:
    """What ``run`` and ``inspect`` decide for a study before loading anything.

    Attributes:
        selection: The chosen series (or none) and why every other series was not chosen.
        preset: The preset whose rules selected it; ``None`` when the headers name no modality
            (volume files): it is then chosen from the loaded data.
        n_series: Series in the study.
    """

    selection: Selection
    preset: Preset | None
    n_series: int


def _header_series(series: list[SeriesRef], base_rules: SeriesRules) -> SeriesRef | None:
    """The series whose headers name the preset: ``base_rules``' pick, else the first candidate image."""
    chosen = select_series(series, base_rules).chosen
    return chosen if chosen is not None else next((s for s in series if s.candidate and s.is_image), None)


def plan_study(
    study: StudyRef, choose: PresetChooser, *, auto: bool, base_rules: SeriesRules | None = None
) -> StudyPlan:
    """Choose the preset from the headers and the series by its rules (the one selection road).

    Args:
        study: A study from :func:`~medzsad.io.discovery.discover`.
        choose: Names the preset (with the caller's overrides) from modality, body part, description.
        auto: The preset depends on the headers (``preset: auto``); a fixed preset is chosen once.
        base_rules: Rules whose pick names an ``auto`` preset (default io's defaults).

    Raises:
        ConfigError: Unknown preset or invalid override (from ``choose``).
    """
    base = base_rules or SeriesRules()
    series = list(study.series)
    header = _header_series(series, base)
    preset: Preset | None = None
    if not auto or (header is not None and header.modality):
        h = header or SeriesRef("", "", "dicom", ())
        preset = choose(h.modality, h.body_part, h.description)
    selection = select_series(series, preset.series if preset is not None else base)
    return StudyPlan(selection, preset, len(series))


def _skipped_error(path: Path, discovery: Discovery) -> InputError:
    """The error for a path that holds no usable study: the file's own typed error for one file."""
    first = discovery.skipped[0]
    if path.is_file() and len(discovery.skipped) == 1:
        kind = getattr(medzsad.errors, first.error, None) if first.error else None
        cls = kind if isinstance(kind, type) and issubclass(kind, InputError) else InputError
        return cls(f"{first.path}: {first.reason}")
    return InputError(
        f"{path}: holds no usable study; {len(discovery.skipped)} file(s) skipped, e.g. {first.path}: "
        f"{first.reason}"
    )


def find_study(path: str | os.PathLike[str], study_uid: str = "") -> StudyRef:
    """The one study of ``path`` (any file, folder, ``.zip`` or DICOMDIR), from its headers.

    Args:
        path: The input.
        study_uid: Keep only this study of the input (``""``: the input must hold one).

    Raises:
        InputError: Nothing usable (a single file's own typed error, e.g. ``DicomError``), the
            study is not there, or several studies and no ``study_uid``.
    """
    p = Path(path)
    discovery = discover(p)
    found = [s for s in discovery if not study_uid or s.study_uid == study_uid]
    if not found and discovery.skipped and not study_uid:
        raise _skipped_error(p, discovery)
    if not found and study_uid:
        raise InputError(
            f"{p}: the study is not there (any more; {len(discovery.studies)} other studies are); "
            "rerun to rediscover the input"
        )
    if not found:
        raise InputError(f"{p}: holds no study")
    if len(found) != 1:
        raise InputError(
            f"{p}: holds {len(found)} studies; give it as a cohort input (each study is run) or "
            "list them separately"
        )
    return found[0]


def read_with_preset(
    path: str | os.PathLike[str],
    choose: PresetChooser,
    *,
    auto: bool,
    base_rules: SeriesRules | None = None,
    study_uid: str = "",
    gaps: LoadPolicy = LoadPolicy.WARN,
) -> PresetRead:
    """Read a scan and choose its preset (steps in the module docstring).

    Args:
        path: A scan file, or a folder/``.zip``/DICOMDIR holding one study.
        choose: Names the preset (with the caller's overrides) from modality, body part, description.
        auto: The preset depends on the headers (``preset: auto``); a fixed preset is chosen once.
        base_rules: Rules whose pick names an ``auto`` preset (default io's defaults).
        study_uid: Keep only this study of the folder (``""``: the folder must hold one).
        gaps: What missing slices and irregular spacing do (a cohort's ``pipeline.on_gap``).

    Raises:
        InputError: Unreadable input, several studies, no series that can be scored, or a gap
            under ``gaps`` ``error`` (``DicomError``).
        ConfigError: Unknown preset or invalid override (from ``choose``).
    """
    study = find_study(path, study_uid)
    plan = plan_study(study, choose, auto=auto, base_rules=base_rules)
    chosen = plan.selection.require(str(path))
    v = load_volume(chosen, gaps=gaps)
    dicom = chosen.kind == "dicom"
    preset = plan.preset
    if preset is None:  # no modality in the headers (volume files): decided from the data
        preset = choose(guess_modality(v), chosen.body_part, chosen.description if dicom else "")
    why = plan.selection.reason if dicom else ""
    return PresetRead(v, preset, chosen.body_part, why, plan.n_series, plan.selection.fallback)


def preset_chooser(preset: str = "auto") -> PresetChooser:
    """The chooser of a preset name without overrides (``auto``: named from the headers)."""

    def choose(modality: str, body_part: str, description: str) -> Preset:
        name = auto_preset_name(modality, body_part, description) if preset == "auto" else preset
        return load_preset(name)

    return choose


def inspect_scan(
    path: str | os.PathLike[str], *, preset: str = "auto", load: bool = True, policy: str = "warn"
) -> InspectReport:
    """``medzsad inspect``: what ``medzsad run -i PATH [--preset NAME]`` would choose and load.

    Args:
        path: Folder, ``.zip``, DICOMDIR or scan file.
        preset: The preset ``run`` would use (``auto``: named from each study's headers).
        load: Load each chosen series (shape, spacing, orientation, value range, problems).
        policy: Load policy for DICOM geometry problems.

    Raises:
        InputError: ``path`` does not exist.
        ConfigError: Unknown preset.
    """
    choose = preset_chooser(preset)
    plans: dict[tuple[str, str], StudyPlan] = {}

    def select(study: StudyRef) -> Selection:
        plan = plan_study(study, choose, auto=preset == "auto")
        plans[study.path, study.study_uid] = plan
        return plan.selection

    report = inspect_path(path, load=load, policy=policy, select=select)
    named = []
    for s in report.studies:
        chosen = plans[s.study.path, s.study.study_uid].preset
        how = "given" if preset != "auto" else "from the headers"
        text = f"{chosen.name} ({how})" if chosen is not None else "auto: chosen from the loaded data"
        named.append(replace(s, preset=text))
    return replace(report, studies=tuple(named))
