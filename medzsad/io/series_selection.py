"""Choose the series to analyse in a study by declarative rules (the MONAI Deploy series-selector idea).

A series is *eligible* when it passes every rule (image object, modality, ImageType, description
include/exclude, minimum slices, plane); among eligible series ``prefer`` breaks the tie. Every
rejected series is reported with the first rule it failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medzsad.errors import InputError
from medzsad.io.series_ref import SeriesRef

__all__ = ["SeriesRules", "Selection", "Rejection", "select_series"]

DEFAULT_EXCLUDE = ("locali[sz]er", "scout", "topogram", "surview", "scanogram", "pilot")
Prefer = Literal["thinnest", "most_slices", "first"]
PlaneName = Literal["axial", "coronal", "sagittal"]


class SeriesRules(BaseModel):
    """Rules a series must pass.

    Attributes:
        modality: Allowed Modality values (``None``: any).
        image_type_exclude: A series whose ImageType contains one of these is skipped.
        include: Regular expressions (case-insensitive); SeriesDescription must match one (``None``: any).
        exclude: Regular expressions (case-insensitive); a matching SeriesDescription is skipped
            (default: localizer/scout/topogram/surview/scanogram/pilot names).
        allow_mixed_orientation: Accept a series whose slices have different orientations
            (reformats/MIPs, multi-plane pilots); loading keeps the largest consistent group.
        min_slices: Fewest 2D slices (frames counted) a usable series has.
        orientation: Allowed acquisition planes (``None``: any; oblique counts as its closest plane).
        prefer: Tie-break among eligible series: ``thinnest`` SliceThickness (then most slices),
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
        chosen: The series to analyse, or ``None`` when none is eligible.
        reason: Why it was chosen (or why nothing was).
        rejected: Every other series with the reason.
    """

    chosen: SeriesRef | None
    reason: str
    rejected: tuple[Rejection, ...]

    def require(self, study: str = "study") -> SeriesRef:
        """The chosen series, or an :class:`InputError` listing why each series was rejected."""
        if self.chosen is not None:
            return self.chosen
        detail = "; ".join(f"{_label(r.series)}: {r.reason}" for r in self.rejected) or "no series"
        raise InputError(f"{study}: no series passes the selection rules ({detail}); relax pipeline.series")


def _label(s: SeriesRef) -> str:
    num = f"#{s.series_number} " if s.series_number is not None else ""
    return f"{num}{s.modality or s.kind} '{s.description}'"


def _rejection(s: SeriesRef, rules: SeriesRules) -> str | None:
    """The first rule ``s`` fails, or ``None``."""
    if not s.is_image:
        return f"not an image (SOP class {s.sop_class_uid})"
    if rules.modality is not None and s.modality.upper() not in {m.upper() for m in rules.modality}:
        return f"modality {s.modality or 'unknown'} not in {list(rules.modality)}"
    hit = [t for t in rules.image_type_exclude if t.upper() in s.image_type]
    if hit:
        return f"ImageType contains {hit[0]}"
    desc = s.description
    if rules.include is not None and not any(re.search(p, desc, re.IGNORECASE) for p in rules.include):
        return f"description {desc!r} matches no include pattern {list(rules.include)}"
    for p in rules.exclude:
        if re.search(p, desc, re.IGNORECASE):
            return f"description {desc!r} matches exclude pattern {p!r}"
    if s.plane == "mixed" and not rules.allow_mixed_orientation:
        return "slices have different orientations (reformat, MIP or multi-plane pilot)"
    if s.n_slices < rules.min_slices:
        return f"{s.n_slices} slice(s) < min_slices {rules.min_slices}"
    if rules.orientation is not None and s.plane not in rules.orientation:
        return f"plane {s.plane} not in {list(rules.orientation)}"
    return None


def _rank(s: SeriesRef, prefer: Prefer) -> tuple:
    thick = s.slice_thickness_mm if s.slice_thickness_mm is not None else float("inf")
    number = s.series_number if s.series_number is not None else 1 << 30
    if prefer == "thinnest":
        return (thick, -s.n_slices, number, s.series_uid)
    if prefer == "most_slices":
        return (-s.n_slices, thick, number, s.series_uid)
    return (number, s.series_uid)


def select_series(series: object, rules: SeriesRules | None = None) -> Selection:
    """Choose one series.

    Args:
        series: A :class:`~medzsad.io.discovery.StudyRef` (anything with ``.series``) or a sequence
            of :class:`SeriesRef`.
        rules: Selection rules (defaults: any modality, no localizers/scouts, thinnest first).

    Returns:
        :class:`Selection` with the chosen series and a reason for every other one.
    """
    rules = rules or SeriesRules()
    candidates: list[SeriesRef] = list(getattr(series, "series", series))  # type: ignore[call-overload]
    eligible, rejected = [], []
    for s in candidates:
        why = _rejection(s, rules)
        if why is None:
            eligible.append(s)
        else:
            rejected.append(Rejection(s, why))
    if not eligible:
        return Selection(None, "no series passes the rules", tuple(rejected))
    ranked = sorted(eligible, key=lambda s: _rank(s, rules.prefer))
    chosen = ranked[0]
    basis = {"thinnest": "thinnest slices", "most_slices": "most slices", "first": "lowest series number"}
    for other in ranked[1:]:
        rejected.append(
            Rejection(other, f"eligible, but {_label(chosen)} ranks first by {basis[rules.prefer]}")
        )
    reason = f"passes all rules; first of {len(eligible)} eligible by {basis[rules.prefer]}"
    return Selection(chosen, reason, tuple(rejected))
