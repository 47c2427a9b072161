"""``pipeline:``: preprocessing preset, window, slicing axes (and their fusion) and series rules."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from medzsad.config._base import _Section
from medzsad.preset_names import unknown_preset


class WindowConfig(_Section):
    """Intensity window: ``center``/``width`` in scanner units (HU for CT), or percentiles (MR)."""

    center: float | None = None
    width: float | None = Field(default=None, gt=0)
    percentiles: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> WindowConfig:
        fixed = self.center is not None or self.width is not None
        if fixed and (self.center is None or self.width is None):
            raise ValueError("window needs both center and width")
        if fixed and self.percentiles is not None:
            raise ValueError("window takes either center/width or percentiles, not both")
        if not fixed and self.percentiles is None:
            raise ValueError("window needs center/width or percentiles")
        if self.percentiles is not None and not 0 <= self.percentiles[0] < self.percentiles[1] <= 100:
            raise ValueError("percentiles must be [low, high] with 0 <= low < high <= 100")
        return self


class SeriesOverrides(_Section):
    """Which series of a DICOM study to use (``None`` keeps :mod:`medzsad.io`'s default rule).

    Attributes:
        modality: Allowed modalities, e.g. ``[CT]``.
        include: Regular expressions; the SeriesDescription must match one.
        exclude: Regular expressions; a matching SeriesDescription is skipped (e.g. ``scout``).
        min_slices: Fewest slices a usable series has.
        prefer: Tie-break among usable series: thinnest slices (io default), most slices, or first.
    """

    modality: tuple[str, ...] | None = None
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    min_slices: int | None = Field(default=None, ge=1)
    prefer: Literal["most_slices", "thinnest", "first"] | None = None


AxisName = Literal["axial", "coronal", "sagittal"]


class PipelineConfig(_Section):
    """Preprocessing: a preset from ``pipelines/`` plus overrides (``None`` keeps the preset's value).

    ``axis`` is the one-axis spelling of ``axes`` (``axis: coronal`` is ``axes: [coronal]``); it is
    turned into ``axes`` when the file is read, so both spellings hash the same (the validated
    section has ``axis: None``).

    Attributes:
        axes: Slice orientations scored, first the primary one (``None``: the preset's one axis).
            Each axis is cut in the same canonical anatomical orientation, scored by the one batch
            loop, put back on the source grid, and the per-axis heat maps are fused (``fusion``).
        axis_stride: The axes after the first score every ``axis_stride``-th non-empty slice (in
            the canonical RAS order, so any voxel order gives the same slices); the heat between
            scored slices is interpolated linearly along the axis.
        fusion: How per-axis heat maps become one: ``mean``, ``geometric`` (mean of logs) or ``max``.
        on_gap: What missing slices or irregular slice spacing in a DICOM series do: ``warn`` (the
            study is scored on SimpleITK's grid and the warning goes to studies.csv, the review page
            and the terminal), ``fail`` (the study fails, naming the gap) or ``resample`` (linear
            interpolation onto the median spacing).
    """

    preset: str = "auto"
    window: WindowConfig | None = None
    axis: AxisName | None = None
    axes: tuple[AxisName, ...] | None = None
    axis_stride: int = Field(default=2, ge=1)
    fusion: Literal["mean", "geometric", "max"] = "mean"
    series: SeriesOverrides | None = None
    skip_empty_slices: bool | None = None
    on_gap: Literal["warn", "fail", "resample"] = "warn"

    @model_validator(mode="before")
    @classmethod
    def _axis_is_axes(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("axis") is None:
            return data
        axis, axes = data["axis"], data.get("axes")
        if axes is not None and (not isinstance(axes, (list, tuple)) or list(axes) != [axis]):
            raise ValueError("give either pipeline.axis (one axis) or pipeline.axes (a list), not both")
        # one canonical form: axis is the one-element spelling of axes and is not kept
        return {**data, "axes": [axis], "axis": None}

    @field_validator("axes")
    @classmethod
    def _distinct_axes(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError(f"pipeline.axes must list distinct axes, at least one (got {list(v)})")
        return v

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        # checked where it enters: a misspelt preset is a configuration error before any study runs
        why = unknown_preset(v)
        if why is not None:
            raise ValueError(why)
        return v
