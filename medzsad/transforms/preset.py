"""Preprocessing presets: ``pipelines/<name>.yaml`` -> a frozen, validated :class:`Preset`.

Torch-free and fast (pydantic + yaml only), so the CLI can list presets instantly. The folder is
``$MEDZSAD_PIPELINES`` when set, else ``pipelines/`` at the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medzsad.errors import ConfigError
from medzsad.io.series_selection import SeriesRules
from medzsad.preset_names import list_presets, pipelines_dir

if TYPE_CHECKING:
    from medzsad.io.volume import Volume

__all__ = [
    "Preset",
    "Intensity",
    "Foreground",
    "WindowHU",
    "load_preset",
    "list_presets",
    "auto_preset_name",
    "guess_modality",
    "pipelines_dir",
]

_STRICT = ConfigDict(extra="forbid", frozen=True)
WINDOW_NAMES = ("brain", "subdural", "stroke", "lung", "mediastinum", "abdomen", "liver", "bone")


class WindowHU(BaseModel):
    """An explicit window in scanner units."""

    model_config = _STRICT
    center: float
    width: float = Field(gt=0)


class Intensity(BaseModel):
    """How voxel values become ``[0, 1]``: a CT window (named or explicit) or MR percentiles."""

    model_config = _STRICT
    window: (
        Literal["brain", "subdural", "stroke", "lung", "mediastinum", "abdomen", "liver", "bone"]
        | WindowHU
        | None
    ) = None
    percentiles: tuple[float, float] | None = None
    nonzero: bool = True

    @model_validator(mode="after")
    def _one(self) -> Intensity:
        if (self.window is None) == (self.percentiles is None):
            raise ValueError("intensity needs exactly one of window or percentiles")
        if self.percentiles is not None and not 0 <= self.percentiles[0] < self.percentiles[1] <= 100:
            raise ValueError("percentiles must be [low, high] with 0 <= low < high <= 100")
        return self


class Foreground(BaseModel):
    """Which slices count as empty: fewer than ``min_fraction`` voxels above ``threshold``.

    ``space: raw`` compares scanner values (HU), ``normalized`` the ``[0, 1]`` intensities.
    """

    model_config = _STRICT
    threshold: float
    min_fraction: float = Field(default=0.02, ge=0, le=1)
    space: Literal["raw", "normalized"] = "raw"


class Preset(BaseModel):
    """A preprocessing preset (one YAML file in ``pipelines/``)."""

    model_config = _STRICT
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    modality: tuple[str, ...]
    intensity: Intensity
    axis: Literal["axial", "coronal", "sagittal"] = "axial"
    series: SeriesRules = SeriesRules()
    skip_empty_slices: bool = True
    foreground: Foreground = Foreground(threshold=0.05, space="normalized")
    letterbox: bool = True

    def updated(
        self,
        *,
        window: object | None = None,
        axis: str | None = None,
        series: object | None = None,
        skip_empty_slices: bool | None = None,
    ) -> Preset:
        """This preset with cohort overrides (``None`` keeps the preset's value).

        Args:
            window: Object/dict with ``center``+``width`` or ``percentiles`` (e.g. the cohort
                file's ``pipeline.window``).
            axis: Slice axis.
            series: Series rules overrides (non-``None`` fields replace ours).
            skip_empty_slices: Whether empty slices are skipped.

        Raises:
            ConfigError: The overrides are invalid.
        """
        data = self.model_dump()
        if window is not None:
            w = window if isinstance(window, dict) else window.model_dump()  # type: ignore[attr-defined]
            if w.get("percentiles") is not None:
                data["intensity"] = {"percentiles": w["percentiles"], "nonzero": self.intensity.nonzero}
            else:
                data["intensity"] = {"window": {"center": w["center"], "width": w["width"]}}
        if axis is not None:
            data["axis"] = axis
        if series is not None:
            data["series"] = self.series.updated(series).model_dump()
        if skip_empty_slices is not None:
            data["skip_empty_slices"] = skip_empty_slices
        try:
            return Preset.model_validate(data)
        except ValidationError as e:
            raise ConfigError(f"preset {self.name}: invalid override: {_first_error(e)}") from e


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])


def load_preset(name_or_path: str | os.PathLike[str]) -> Preset:
    """Load and validate a preset by name (``ct-head``) or YAML path.

    Raises:
        ConfigError: Unknown name, unreadable file, invalid YAML or invalid fields (names the file).
    """
    text = os.fspath(name_or_path)
    path = (
        Path(text) if text.endswith((".yaml", ".yml")) or os.sep in text else pipelines_dir() / f"{text}.yaml"
    )
    if not path.is_file():
        raise ConfigError(
            f"preset {text!r} not found (looked for {path}); available: {', '.join(list_presets())}"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the preset ({e})") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a preset is a YAML mapping")
    try:
        return Preset.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{path}: {_first_error(e)}") from e


def auto_preset_name(modality: str, body_part: str = "", description: str = "") -> str:
    """A preset name for a scan: CT by body part/description, MR -> ``mr-brain``, 2D -> ``xray-2d``."""
    m = modality.upper()
    text = f"{body_part} {description}".upper()
    if m == "CT":
        if any(w in text for w in ("HEAD", "BRAIN", "SKULL", "CEREBR")):
            return "ct-head"
        if any(w in text for w in ("CHEST", "THORAX", "LUNG", "PULMO")):
            return "ct-chest"
        return "ct-abdomen"
    if m == "MR":
        return "mr-brain"
    return "xray-2d"


#: Below this minimum value an unlabelled volume is taken to be in Hounsfield units (CT).
_HU_MIN_THRESHOLD = -500.0


def guess_modality(volume: Volume) -> str:
    """The volume's modality, or a guess from its data when the file has none (NIfTI, NRRD).

    A 2D image is a radiograph (``DX``), a volume whose minimum is at most -500 is CT in HU (air is
    about -1000), anything else is treated like MR (percentile normalisation).
    """
    if volume.modality:
        return volume.modality.upper()
    if volume.shape_ijk[2] == 1:
        return "DX"
    if volume.data.size and float(np.nanmin(volume.data)) <= _HU_MIN_THRESHOLD:
        return "CT"
    return "MR"
