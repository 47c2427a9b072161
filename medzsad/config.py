"""Typed cohort file schema: YAML -> frozen pydantic models, unknown keys rejected with their line.

A cohort file has six top-level sections (``name``, ``inputs``, ``pipeline``, ``model``,
``output``, ``executor``); every key is documented in ``docs/cohort.md``. Relative paths resolve
against the directory of the cohort file, except the default output directory
``reports/<name>/``, which is relative to the current directory.

Errors are one line naming the file and the line of the offending key, e.g.
``cohort.yaml:12: unknown key 'thresold' in output (allowed: dir, outputs, threshold, ...)``.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medzsad.errors import ConfigError

__all__ = [
    "CohortConfig",
    "InputsConfig",
    "PipelineConfig",
    "SeriesRules",
    "WindowConfig",
    "ModelConfig",
    "OutputConfig",
    "ThresholdRule",
    "StudyScoreRule",
    "ExecutorConfig",
    "OutputKind",
    "DEFAULT_OUTPUTS",
    "load_cohort",
    "parse_cohort",
    "study_config_hash",
]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class _Section(BaseModel):
    model_config = _STRICT


class OutputKind(str, Enum):
    """Files that can be written (see :data:`DEFAULT_OUTPUTS` for the default set).

    ``dicom-seg``/``dicom-pmap`` (DICOM SEG of the mask, Parametric Map of the heat map) are
    written for DICOM studies only; ``slicer`` adds a 3D Slicer bundle per study; ``html`` a
    cohort review page ``report.html``.
    """

    HEATMAP = "heatmap"
    MASK = "mask"
    SLICES = "slices"
    LESIONS = "lesions"
    OVERLAY = "overlay"
    PROVENANCE = "provenance"
    DICOM_SEG = "dicom-seg"
    DICOM_PMAP = "dicom-pmap"
    SLICER = "slicer"
    HTML = "html"


#: Outputs written when ``output.outputs`` is not given.
DEFAULT_OUTPUTS = (
    OutputKind.HEATMAP,
    OutputKind.MASK,
    OutputKind.SLICES,
    OutputKind.LESIONS,
    OutputKind.OVERLAY,
    OutputKind.PROVENANCE,
    OutputKind.HTML,
)


class InputsConfig(_Section):
    """Where the studies are.

    Attributes:
        paths: Files or folders (a DICOM folder, a PACS export, a NIfTI file or a folder of them).
        globs: Glob patterns (``**`` allowed) relative to the cohort file.
        manifest: CSV with columns ``study_id,path`` and optional ``label`` (0/1) and ``mask``.
    """

    paths: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    manifest: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> InputsConfig:
        if not (self.paths or self.globs or self.manifest):
            raise ValueError("give at least one of paths, globs or manifest")
        return self


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


class SeriesRules(_Section):
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


class PipelineConfig(_Section):
    """Preprocessing: a preset from ``pipelines/`` plus overrides (``None`` keeps the preset's value)."""

    preset: str = "auto"
    window: WindowConfig | None = None
    axis: Literal["axial", "coronal", "sagittal"] | None = None
    series: SeriesRules | None = None
    skip_empty_slices: bool | None = None


class ModelConfig(_Section):
    """The detector and where it runs."""

    backbone: str = "ViT-L-14-336"
    clip_weights: str = "clip_vitl14_336.openai"
    prompt_weights: str = "anomalyclip_vitl14_336.mvtec"
    image_size: int = Field(default=518, ge=14)
    feature_layers: tuple[int, ...] = (24,)
    dpam_layers: int = Field(default=19, ge=0)
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    batch_size: int = Field(default=8, ge=1)
    tiny: bool = False
    seed: int = 0

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        ok = v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps (got {v!r})")
        return v

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, v: int) -> int:
        if v % 14:
            raise ValueError(f"image_size must be a multiple of the patch size 14 (got {v})")
        return v

    @model_validator(mode="after")
    def _tiny_needs_random(self) -> ModelConfig:
        if self.tiny and (self.clip_weights != "random" or self.prompt_weights != "random"):
            raise ValueError(
                "tiny: true builds a random test backbone; set clip_weights and prompt_weights to random"
            )
        return self

    @property
    def is_smoke(self) -> bool:
        """True when any weight is random: outputs are labelled as a smoke run."""
        return self.tiny or self.clip_weights == "random" or self.prompt_weights == "random"


class ThresholdRule(_Section):
    """How the heat map (values in [0, 1]) becomes a mask.

    Attributes:
        method: ``fixed``: voxels with ``heat >= value``; ``percentile``: the study's own
            ``value``-th percentile of heat inside the scanned body (value in (0, 100)).
        value: Threshold or percentile.
        min_lesion_ml: Connected components (26-connectivity) smaller than this are dropped.
    """

    method: Literal["fixed", "percentile"] = "fixed"
    value: float = 0.5
    min_lesion_ml: float = Field(default=0.1, ge=0)

    @model_validator(mode="after")
    def _range(self) -> ThresholdRule:
        if self.method == "percentile" and not 0 < self.value < 100:
            raise ValueError("percentile threshold value must be in (0, 100)")
        return self


class StudyScoreRule(_Section):
    """How slice scores become the study score."""

    method: Literal["max_slice", "topk_mean", "max_map"] = "max_slice"
    k: int = Field(default=3, ge=1)


#: ``output.formats`` (file formats, the radiology view) -> the per-file ``output.outputs`` they add.
#: The tables and provenance (``slices``, ``lesions``, ``provenance``) are always written with them.
FORMAT_OUTPUTS: dict[str, tuple[OutputKind, ...]] = {
    "nifti": (OutputKind.HEATMAP, OutputKind.MASK),
    "png": (OutputKind.OVERLAY,),
    "html": (OutputKind.HTML,),
    "dicom-seg": (OutputKind.DICOM_SEG,),
    "dicom-pmap": (OutputKind.DICOM_PMAP,),
    "slicer": (OutputKind.SLICER,),
}
_ALWAYS_WITH_FORMATS = (OutputKind.SLICES, OutputKind.LESIONS, OutputKind.PROVENANCE)


class OutputConfig(_Section):
    """What is written and where.

    ``formats`` is the short form (``[nifti, dicom-seg, slicer, png, html]``); ``outputs`` lists
    files one by one. Give one of them.
    """

    dir: str | None = None
    formats: tuple[str, ...] | None = None
    outputs: tuple[OutputKind, ...] = DEFAULT_OUTPUTS
    keep_empty_frames: bool = False
    threshold: ThresholdRule = ThresholdRule()
    study_score: StudyScoreRule = StudyScoreRule()
    overlay_slices: int = Field(default=6, ge=1, le=32)
    show_ids: bool = False

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("formats") is None:
            return data
        data = dict(data)
        formats = data["formats"]
        if "outputs" in data:
            raise ValueError("give either output.formats or output.outputs, not both")
        if isinstance(formats, str) or not isinstance(formats, (list, tuple)):
            raise ValueError(f"output.formats must be a list, e.g. [nifti, png] (got {formats!r})")
        unknown = [f for f in formats if f not in FORMAT_OUTPUTS]
        if unknown:
            raise ValueError(f"unknown output format(s) {unknown}; known: {sorted(FORMAT_OUTPUTS)}")
        kinds = list(_ALWAYS_WITH_FORMATS)
        for f in formats:
            kinds += [k for k in FORMAT_OUTPUTS[f] if k not in kinds]
        data["outputs"] = tuple(kinds)
        data["formats"] = tuple(formats)
        return data


class ExecutorConfig(_Section):
    """Where studies run. ``local`` is the only executor today (one process, one prefetch thread)."""

    kind: Literal["local"] = "local"
    prefetch: int = Field(default=1, ge=0, le=4)
    continue_on_error: bool = True


class CohortConfig(_Section):
    """A whole cohort file.

    Attributes:
        name: Cohort name, ``[A-Za-z0-9._-]``; the default output dir is ``reports/<name>/``.
        base_dir: Directory of the cohort file (set by the loader; relative paths resolve here).
        source_file: The cohort file path (set by the loader; used in error messages).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    inputs: InputsConfig
    pipeline: PipelineConfig = PipelineConfig()
    model: ModelConfig = ModelConfig()
    output: OutputConfig = OutputConfig()
    executor: ExecutorConfig = ExecutorConfig()
    base_dir: str = "."
    source_file: str = "<memory>"

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_shorthand(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v

    def resolve(self, path: str) -> Path:
        """A path from the cohort file, made absolute against :attr:`base_dir` (``~`` expanded)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    @property
    def out_dir(self) -> Path:
        """The output directory: ``output.dir`` (relative to the cohort file) or ``reports/<name>``."""
        if self.output.dir is None:
            return Path("reports") / self.name
        return self.resolve(self.output.dir)

    def with_overrides(self, **changes: Any) -> CohortConfig:
        """A validated copy with dotted keys replaced, e.g. ``{"model.device": "cpu"}``."""
        data = self.model_dump(mode="json")
        for key, value in changes.items():
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        return _validate(data, self.source_file, {})


def study_config_hash(config: CohortConfig) -> str:
    """sha256 of the settings that change a study's outputs (not device, batch size, paths, name)."""
    data = config.model_dump(mode="json")
    model = {k: v for k, v in data["model"].items() if k not in ("device", "batch_size")}
    output = {k: v for k, v in data["output"].items() if k != "dir"}
    payload = json.dumps({"pipeline": data["pipeline"], "model": model, "output": output}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# YAML with line numbers


def _key_lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Record the 1-based line of every mapping key and sequence item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = (*path, key_node.value)
            out[sub] = key_node.start_mark.line + 1
            _key_lines(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, i)
            out[sub] = item.start_mark.line + 1
            _key_lines(item, sub, out)


def _line_of(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the key at ``loc`` (for the list of allowed keys)."""
    model: type[BaseModel] = CohortConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nxt = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None:
            return None
        model = nxt
    return model


def _public_fields(model: type[BaseModel]) -> list[str]:
    return [k for k in model.model_fields if k not in ("base_dir", "source_file")]


def _format_error(err: Any, source: str, lines: dict[tuple[Any, ...], int]) -> str:
    loc = tuple(err["loc"])
    line = _line_of(loc, lines)
    where = f"{source}:{line}" if line is not None else source
    section = ".".join(str(p) for p in loc[:-1]) or "the top level"
    if err["type"] == "extra_forbidden":
        model = _section_model(loc)
        allowed = ", ".join(_public_fields(model)) if model else "see docs/cohort.md"
        return f"{where}: unknown key {loc[-1]!r} in {section} (allowed: {allowed})"
    if err["type"] == "missing":
        return f"{where}: missing key {loc[-1]!r} in {section} (see docs/cohort.md)"
    key = ".".join(str(p) for p in loc) or "cohort"
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    shown = ""
    if not isinstance(value, dict | list) and value is not None and repr(value) not in msg:
        shown = f" (found {value!r})"
    return f"{where}: {key}: {msg}{shown}"


def _validate(data: Any, source: str, lines: dict[tuple[Any, ...], int]) -> CohortConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: a cohort file must be a YAML mapping with name, inputs, ... (see docs/cohort.md)"
        )
    try:
        return CohortConfig.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(_format_error(first, source, lines)) from e


def parse_cohort(text: str, source: str = "<memory>", base_dir: str | Path = ".") -> CohortConfig:
    """Parse cohort YAML text.

    Args:
        text: YAML document.
        source: Name used in error messages (the file name).
        base_dir: Directory that relative paths resolve against.

    Raises:
        ConfigError: Invalid YAML, unknown key, missing key or bad value (one line, with the line number).
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}{line}: invalid YAML: {problem}") from e
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _key_lines(node, (), lines)
    if isinstance(data, dict):
        for reserved in ("base_dir", "source_file"):
            if reserved in data:
                raise ConfigError(
                    f"{source}:{lines.get((reserved,), '?')}: unknown key {reserved!r} at the top level"
                )
        data = {**data, "base_dir": str(Path(base_dir).resolve()), "source_file": source}
    return _validate(data, source, lines)


def load_cohort(path: str | Path) -> CohortConfig:
    """Load and validate a cohort file.

    Raises:
        ConfigError: The file is missing or invalid (the message names the file and line).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the cohort file ({e.strerror}); check the path") from e
    return parse_cohort(text, source=str(p), base_dir=p.resolve().parent)
