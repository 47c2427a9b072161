"""``inspect_path``: what discovery, series selection and loading make of a path, as a report.

Used by ``medzsad inspect`` and by tests. Nothing is written; a study that fails to load is
reported with its error and the others are still inspected.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from medzsad.errors import MedzsadError, one_line
from medzsad.io.dicom_common import LoadPolicy
from medzsad.io.discovery import Discovery, StudyRef, discover
from medzsad.io.geometry import orientation_code
from medzsad.io.readers import load_volume
from medzsad.io.series_selection import Selection, SeriesRules, select_series
from medzsad.io.study_names import input_name, study_names
from medzsad.io.volume import Volume

__all__ = ["InspectReport", "StudyReport", "VolumeSummary", "inspect_path", "summarize_volume"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VolumeSummary:
    """Geometry and intensity summary of a loaded volume.

    Attributes:
        shape_ijk: ``(I, J, K)``.
        spacing_mm: Voxel spacing along ``i, j, k``.
        orientation: Orientation code, e.g. ``LPS`` (nibabel letters: direction each axis increases to).
        origin_lps_mm: Position of voxel ``(0, 0, 0)``.
        value_range: ``(min, max)`` of the voxel values (HU for CT).
        modality: Modality.
        problems: Warnings recorded while loading.
    """

    shape_ijk: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    orientation: str
    origin_lps_mm: tuple[float, float, float]
    value_range: tuple[float, float]
    modality: str
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {
            "shape_ijk": list(self.shape_ijk),
            "spacing_mm": [round(x, 6) for x in self.spacing_mm],
            "orientation": self.orientation,
            "origin_lps_mm": [round(x, 4) for x in self.origin_lps_mm],
            "value_range": [float(x) for x in self.value_range],
            "modality": self.modality,
            "problems": list(self.problems),
        }


def summarize_volume(volume: Volume) -> VolumeSummary:
    """The :class:`VolumeSummary` of a volume."""
    data = volume.data
    rng = (float(np.min(data)), float(np.max(data))) if data.size else (0.0, 0.0)
    return VolumeSummary(
        volume.shape_ijk,
        volume.spacing_mm,
        orientation_code(volume.affine_ras),
        volume.origin_lps_mm,
        rng,
        volume.modality,
        volume.warnings,
    )


@dataclass(frozen=True)
class StudyReport:
    """One study: its series, the chosen one and why, and the loaded volume (or the error).

    Attributes:
        study: The study as discovery found it.
        chosen_uid: The chosen series, or ``None`` when no series can be scored.
        reason: Why it was chosen (the fallback included), or why nothing was.
        rejected: ``(series_uid, reason)`` of every other series.
        volume: The loaded volume's summary (``None`` without loading or when loading failed).
        error: The typed error's message when loading failed.
        fallback: The ranking rule the chosen series misses, ``""`` when none.
        run_id: The id ``medzsad run -i PATH`` gives the study (its output folder's name).
        preset: The preset ``run`` would use and how it was named (``""`` when not known here).
    """

    study: StudyRef
    chosen_uid: str | None
    reason: str
    rejected: tuple[tuple[str, str], ...]
    volume: VolumeSummary | None = None
    error: str | None = None
    fallback: str = ""
    run_id: str = ""
    preset: str = ""

    @property
    def ok(self) -> bool:
        """A series was chosen and (when loaded) loaded: ``run`` would score this study."""
        return self.chosen_uid is not None and self.error is None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {
            "study_id": self.run_id or self.study.study_id,
            "study_uid": self.study.study_uid,
            "kind": self.study.kind,
            "path": self.study.path,
            "description": self.study.description,
            "preset": self.preset or None,
            "series": [s.to_dict() for s in self.study.series],
            "chosen_series": self.chosen_uid,
            "reason": self.reason,
            "fallback": self.fallback,
            "rejected": [{"series_uid": uid, "reason": why} for uid, why in self.rejected],
            "volume": self.volume.to_dict() if self.volume else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class InspectReport:
    """Everything ``medzsad inspect`` shows."""

    root: str
    n_files: int
    seconds: float
    studies: tuple[StudyReport, ...]
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def n_failed(self) -> int:
        """Studies ``run`` would not score (no scorable series, or the chosen one does not load)."""
        return sum(not s.ok for s in self.studies)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {
            "root": self.root,
            "n_files": self.n_files,
            "discovery_seconds": round(self.seconds, 3),
            "studies": [s.to_dict() for s in self.studies],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }

    def to_text(self) -> str:
        """A human-readable report."""
        lines = [
            f"{self.root}: {len(self.studies)} {'study' if len(self.studies) == 1 else 'studies'} in "
            f"{self.n_files} file{'' if self.n_files == 1 else 's'} ({len(self.skipped)} skipped)"
        ]
        for s in self.studies:
            uid = f" (StudyInstanceUID {s.study.study_uid})" if s.study.kind == "dicom" else ""
            head = f"study {s.run_id or s.study.study_id}{uid} [{s.study.kind}] {s.study.description}"
            lines.append(head.rstrip())
            if s.preset:
                lines.append(f"    preset: {s.preset}")
            for ser in s.study.series:
                mark = "*" if ser.series_uid == s.chosen_uid else " "
                never = "  [never scored]" if not ser.candidate else ""
                number = ser.series_number if ser.series_number is not None else "-"
                copies = f" in {len(ser.files)} files" if len(ser.files) > ser.n_instances else ""
                lines.append(
                    f"  {mark} #{number} {ser.modality or ser.kind} {ser.description!r} "
                    f"{ser.n_slices} slices{copies}, {ser.plane}{never}"
                )
            lines.append(f"    chosen: {s.chosen_uid or 'none'} ({s.reason})")
            for uid, why in s.rejected:
                lines.append(f"    not {uid}: {why}")
            if s.volume:
                v = s.volume
                lines.append(
                    f"    volume {v.shape_ijk} spacing {tuple(round(x, 4) for x in v.spacing_mm)} mm "
                    f"{v.orientation} values {v.value_range[0]:g}..{v.value_range[1]:g}"
                )
                lines += [f"    problem: {p}" for p in v.problems]
            if s.error:
                lines.append(f"    error: {s.error}")
        lines += [f"skipped {p}: {r}" for p, r in self.skipped]
        return "\n".join(lines)


def _study_report(study: StudyRef, sel: Selection, load: bool, policy: LoadPolicy) -> StudyReport:
    rejected = tuple((r.series.series_uid, r.reason) for r in sel.rejected)
    chosen = sel.chosen
    if chosen is None or not load:
        return StudyReport(
            study, chosen.series_uid if chosen else None, sel.reason, rejected, fallback=sel.fallback
        )
    try:
        volume = load_volume(chosen, policy=policy)
    except MedzsadError as e:
        return StudyReport(
            study, chosen.series_uid, sel.reason, rejected, error=one_line(e), fallback=sel.fallback
        )
    return StudyReport(
        study, chosen.series_uid, sel.reason, rejected, summarize_volume(volume), fallback=sel.fallback
    )


def inspect_path(
    path: str | os.PathLike[str],
    *,
    rules: SeriesRules | None = None,
    load: bool = True,
    policy: LoadPolicy | str = LoadPolicy.WARN,
    select: Callable[[StudyRef], Selection] | None = None,
) -> InspectReport:
    """Discover ``path``, choose a series per study and (optionally) load it.

    Args:
        path: Folder, ``.zip``, DICOMDIR or scan file.
        rules: Series selection rules (default :class:`SeriesRules`) when no ``select`` is given.
        load: Load each chosen series to report shape, spacing, orientation, value range and problems.
        policy: Load policy for DICOM geometry problems.
        select: The selection of a study; ``medzsad inspect`` passes the one ``run`` uses (the
            preset's rules, :func:`medzsad.transforms.preset_reading.inspect_scan`).

    A file that cannot be used is listed as skipped and a study that fails to load is reported
    with its error; neither stops the inspection.

    Raises:
        InputError: ``path`` does not exist.
    """
    found: Discovery = discover(path)
    pol = LoadPolicy(policy)
    choose = select if select is not None else (lambda study: select_series(study, rules))
    names = study_names(Path(found.root), input_name(Path(path)), found.studies)
    studies = tuple(
        replace(_study_report(s, choose(s), load, pol), run_id=sid)
        for s, sid in zip(found.studies, names, strict=True)
    )
    skipped = tuple((s.path, s.reason) for s in found.skipped)
    return InspectReport(found.root, found.n_files, found.seconds, studies, skipped)
