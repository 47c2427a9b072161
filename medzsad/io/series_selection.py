"""Choose the series to analyse in a study by declarative rules (the MONAI Deploy series-selector idea).

Rules *refuse* only what cannot be scored, and *rank* the rest:

* refused (never chosen): objects that are not candidates (SEG, Parametric Map, RT, SR, KO, PR,
  medzsad's own outputs, header-only copies; :mod:`medzsad.io.dicom_objects`), another modality
  than the preset's (its intensity settings would not fit), localizers and scouts (``ImageType``
  and description ``exclude``), slices of several orientations, fewer slices than ``min_slices``;
* ranked (a scorable series is chosen even when it misses them): the description ``include``
  patterns first, then the preferred ``orientation``, then secondary captures last, then
  ``prefer`` (thinnest slices, most slices or lowest SeriesNumber), then SeriesNumber and UID.

When the chosen series misses a ranking rule the fallback is stated (``no axial series; used
coronal #3 CT 'COR 2mm'``) in :attr:`Selection.fallback` and :attr:`Selection.reason`. Every
other series is reported with why it was not chosen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medzsad.errors import InputError
from medzsad.io.dicom_objects import sop_name
from medzsad.io.series_ref import SeriesRef

__all__ = ["SeriesRules", "Selection", "Rejection", "select_series", "label"]

DEFAULT_EXCLUDE = ("locali[sz]er", "scout", "topogram", "surview", "scanogram", "pilot")
Prefer = Literal["thinnest", "most_slices", "first"]
PlaneName = Literal["axial", "coronal", "sagittal"]


class SeriesRules(BaseModel):
    """Series rules: which series are refused and how the others rank.

    Attributes:
        modality: Allowed Modality values (``None``: any); another modality is refused (a volume or
            image file, which names none, is not: the preset chosen for it says what it is).
        image_type_exclude: A series whose ImageType contains one of these is refused (localizers).
        include: Regular expressions (case-insensitive; ``None``: any). A SeriesDescription that
            matches one ranks first; a series matching none is used only when no series matches.
        exclude: Regular expressions (case-insensitive); a matching SeriesDescription is refused
            (default: localizer/scout/topogram/surview/scanogram/pilot names).
        allow_mixed_orientation: Accept a series whose slices have different orientations
            (reformats/MIPs, multi-plane pilots); loading keeps the largest consistent group.
        min_slices: Fewest 2D slices (frames counted) a scorable series has; fewer are refused.
        orientation: Preferred acquisition planes (``None``: any; oblique counts as its closest
            plane). A series in another plane is used only when no series is in one of these.
        prefer: Tie-break among the rest: ``thinnest`` SliceThickness (then most slices),
            ``most_slices`` (then thinnest), or ``first`` (lowest SeriesNumber).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: tuple[str, ...] | None = None
    image_type_exclude: tuple[str, ...] = ("LOCALIZER", "SCOUT")
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    allow_mixed_orientation: bool = False
    min_slices: int = Field(default=1, ge=1)
    orientation: tuple[PlaneName, ...] | None = None
    prefer: Prefer = "thinnest"

    @field_validator("include", "exclude")
    @classmethod
    def _regex(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in v or ():
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"invalid regular expression {pattern!r}: {e}") from e
        return v

    def updated(self, overrides: object) -> SeriesRules:
        """These rules with every non-``None`` field of ``overrides`` (a model or a dict) replacing ours."""
        data = overrides if isinstance(overrides, dict) else overrides.model_dump()  # type: ignore[attr-defined]
        update = {k: v for k, v in data.items() if v is not None and k in type(self).model_fields}
        return type(self).model_validate({**self.model_dump(), **update})


@dataclass(frozen=True)
class Rejection:
    """A series that was not chosen, and why."""

    series: SeriesRef
    reason: str


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`select_series` for one study.

    Attributes:
        chosen: The series to analyse, or ``None`` when no series can be scored.
        reason: Why it was chosen (or why nothing was), the fallback included.
        rejected: Every other series with the reason.
        fallback: The ranking rule the chosen series misses, stated for the user (``no axial
            series; used coronal #3 CT 'COR'``), or ``""`` when it passes every rule.
    """

    chosen: SeriesRef | None
    reason: str
    rejected: tuple[Rejection, ...]
    fallback: str = ""

    def require(self, study: str = "study") -> SeriesRef:
        """The chosen series, or an :class:`InputError` listing why each series was refused."""
        if self.chosen is not None:
            return self.chosen
        detail = "; ".join(f"{_where(r.series)}: {r.reason}" for r in self.rejected) or "no series"
        hint = ""
        if any(r.series.candidate for r in self.rejected):
            hint = "; relax pipeline.series if one of them should be used"
        raise InputError(f"{study}: no series can be scored ({detail}){hint}")


def label(s: SeriesRef) -> str:
    """``#3 CT 'AX 1mm'``: how messages name a series (SeriesNumber, modality, description)."""
    num = f"#{s.series_number} " if s.series_number is not None else ""
    return f"{num}{s.modality or s.kind} '{s.description}'"


def _where(s: SeriesRef) -> str:
    """The series and its first file, for a refusal: ``#2 SEG 'liver' (/data/export/seg.dcm)``."""
    if not s.files:
        return label(s)
    more = f" +{len(s.files) - 1} files" if len(s.files) > 1 else ""
    return f"{label(s)} ({s.files[0]}{more})"


def _refusal(s: SeriesRef, rules: SeriesRules) -> str | None:
    """Why ``s`` cannot be scored under ``rules`` (the first refusing rule), or ``None``."""
    if s.not_candidate:
        return s.not_candidate
    if not s.is_image:
        return f"not an image ({sop_name(s.sop_class_uid)} without pixel data)"
    # a volume or image file names no modality: the preset chosen for it says what it is
    stated = s.kind == "dicom" or bool(s.modality)
    if (
        rules.modality is not None
        and stated
        and s.modality.upper() not in {m.upper() for m in rules.modality}
    ):
        return f"modality {s.modality or 'unknown'} not in {list(rules.modality)} (the preset's modality)"
    hit = [t for t in rules.image_type_exclude if t.upper() in s.image_type]
    if hit:
        return f"ImageType contains {hit[0]} (a localizer, not a scan)"
    for p in rules.exclude:
        if re.search(p, s.description, re.IGNORECASE):
            return f"description {s.description!r} matches exclude pattern {p!r}"
    if s.plane == "mixed" and not rules.allow_mixed_orientation:
        return "slices have different orientations (reformat, MIP or multi-plane pilot)"
    if s.n_slices < rules.min_slices:
        return f"{s.n_slices} slice(s) < min_slices {rules.min_slices}: too few to score"
    return None


def _misses_include(s: SeriesRef, rules: SeriesRules) -> bool:
    return rules.include is not None and not any(
        re.search(p, s.description, re.IGNORECASE) for p in rules.include
    )


def _misses_plane(s: SeriesRef, rules: SeriesRules) -> bool:
    return rules.orientation is not None and s.plane not in rules.orientation


def _rank(s: SeriesRef, rules: SeriesRules) -> tuple:
    """Sort key: ranking rules first (include, plane, secondary capture last), then ``prefer``."""
    thick = s.slice_thickness_mm if s.slice_thickness_mm is not None else float("inf")
    number = s.series_number if s.series_number is not None else 1 << 30
    if rules.prefer == "thinnest":
        tail: tuple = (thick, -s.n_slices, number, s.series_uid)
    elif rules.prefer == "most_slices":
        tail = (-s.n_slices, thick, number, s.series_uid)
    else:
        tail = (number, s.series_uid)
    return (_misses_include(s, rules), _misses_plane(s, rules), s.secondary, *tail)


_BASIS = {"thinnest": "thinnest slices", "most_slices": "most slices", "first": "lowest series number"}


def _why_first(chosen: SeriesRef, other: SeriesRef, rules: SeriesRules) -> str:
    """The ranking rule that puts ``chosen`` before ``other``."""
    if _misses_include(other, rules) and not _misses_include(chosen, rules):
        return f"description include pattern {list(rules.include or ())}"
    if _misses_plane(other, rules) and not _misses_plane(chosen, rules):
        return f"plane ({'/'.join(rules.orientation or ())} preferred)"
    if other.secondary and not chosen.secondary:
        return "not being a secondary capture"
    return _BASIS[rules.prefer]


def _fallback(chosen: SeriesRef, rules: SeriesRules) -> str:
    """The stated fallback when the chosen series misses a ranking rule, else ``""``."""
    notes = []
    if _misses_include(chosen, rules):
        notes.append(f"no series matches include {list(rules.include or ())}")
    if _misses_plane(chosen, rules):
        notes.append(f"no {'/'.join(rules.orientation or ())} series")
    if chosen.secondary:
        notes.append("only secondary captures (no acquired image series)")
    if not notes:
        return ""
    plane = f"{chosen.plane} " if _misses_plane(chosen, rules) else ""
    return f"{'; '.join(notes)}; used {plane}{label(chosen)}"


def select_series(series: object, rules: SeriesRules | None = None) -> Selection:
    """Choose one series.

    Args:
        series: A :class:`~medzsad.io.discovery.StudyRef` (anything with ``.series``) or a sequence
            of :class:`SeriesRef`.
        rules: Selection rules (defaults: any modality, no localizers/scouts, thinnest first).

    Returns:
        :class:`Selection` with the chosen series, the fallback it needed, and a reason for every
        other series.
    """
    rules = rules or SeriesRules()
    found: list[SeriesRef] = list(getattr(series, "series", series))  # type: ignore[call-overload]
    scorable, rejected = [], []
    for s in found:
        why = _refusal(s, rules)
        if why is None:
            scorable.append(s)
        else:
            rejected.append(Rejection(s, why))
    if not scorable:
        return Selection(None, "no series can be scored", tuple(rejected))
    ranked = sorted(scorable, key=lambda s: _rank(s, rules))
    chosen = ranked[0]
    for other in ranked[1:]:
        why = _why_first(chosen, other, rules)
        rejected.append(Rejection(other, f"eligible, but {label(chosen)} ranks first by {why}"))
    fallback = _fallback(chosen, rules)
    basis = _BASIS[rules.prefer]
    if fallback:
        reason = f"{fallback} (first of {len(scorable)} scorable by the ranking rules, then {basis})"
    else:
        reason = f"passes all rules; first of {len(scorable)} eligible by {basis}"
    return Selection(chosen, reason, tuple(rejected), fallback)
