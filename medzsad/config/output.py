"""``output:``: which files are written, thresholds and study score rules."""

from __future__ import annotations

import difflib
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from medzsad.config._base import _Section
from medzsad.config.pacs import PushConfig


class OutputKind(str, Enum):
    """Files that can be written (see :data:`DEFAULT_OUTPUTS` for the default set).

    ``dicom-seg``/``dicom-pmap`` (DICOM SEG of the mask, Parametric Map of the heat map) are
    written for DICOM studies only; ``slicer`` adds a 3D Slicer bundle per study; ``html`` a
    cohort review page ``report.html``; ``dicom-sr`` a TID 1500 Measurement Report referencing the
    SEG (so it needs ``dicom-seg``).
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
    DICOM_SR = "dicom-sr"


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


class ThresholdRule(_Section):
    """How the heat map (values in [0, 1]) becomes a mask.

    Attributes:
        method: ``fixed``: voxels with ``heat >= value``; ``percentile``: the study's own
            ``value``-th percentile of heat inside the scanned body (value in (0, 100));
            ``calibrated``: ``heat >= tau`` with tau from a profile of normal studies, so that a
            normal study gets any lesion with probability at most ``alpha`` (docs/calibration.md).
        value: Threshold or percentile (not used by ``calibrated``).
        min_lesion_ml: Connected components (26-connectivity) smaller than this are dropped.
        profile: ``calibrated`` only: the profile folder written by ``medzsad profile``.
        alpha: ``calibrated`` only: the false-lesion rate on normal studies, in (0, 1).
    """

    method: Literal["fixed", "percentile", "calibrated"] = "fixed"
    value: float = 0.5
    min_lesion_ml: float = Field(default=0.1, ge=0)
    profile: str | None = None
    alpha: float = Field(default=0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _range(self) -> ThresholdRule:
        if self.method == "percentile" and not 0 < self.value < 100:
            raise ValueError("percentile threshold value must be in (0, 100)")
        if self.method == "calibrated" and not self.profile:
            raise ValueError("threshold method calibrated needs profile: <folder written by medzsad profile>")
        if self.method != "calibrated" and self.profile is not None:
            raise ValueError("threshold profile is only used with method: calibrated")
        return self


class FlagRule(_Section):
    """Study flags with conformal p-values from a profile of normal studies (``output.flag``).

    Attributes:
        profile: The profile folder written by ``medzsad profile``.
        alpha: Level in (0, 1).
        control: ``fpr``: flag when ``p_value <= alpha`` (a normal study is flagged with probability
            at most alpha); ``fdr``: Benjamini–Hochberg at level alpha over the run's studies.
    """

    profile: str
    alpha: float = Field(default=0.05, gt=0, lt=1)
    control: Literal["fpr", "fdr"] = "fpr"


class StudyScoreRule(_Section):
    """How slice scores (or the heat map) become the study score.

    Attributes:
        method: ``max_slice``: the highest slice score (of every scored axis); ``topk_mean``: mean
            of the ``k`` highest; ``max_map``: the heat map's maximum; ``top_volume``: mean heat of
            the hottest ``volume_ml`` of the scored region (independent of slice thickness).
        k: Slices of ``topk_mean``.
        volume_ml: Volume of ``top_volume`` in mL.
    """

    method: Literal["max_slice", "topk_mean", "max_map", "top_volume"] = "max_slice"
    k: int = Field(default=3, ge=1)
    volume_ml: float = Field(default=1.0, gt=0)


#: ``output.formats`` (file formats, the radiology view) -> the per-file ``output.outputs`` they add.
#: The tables and provenance (``slices``, ``lesions``, ``provenance``) are always written with them.
FORMAT_OUTPUTS: dict[str, tuple[OutputKind, ...]] = {
    "nifti": (OutputKind.HEATMAP, OutputKind.MASK),
    "png": (OutputKind.OVERLAY,),
    "html": (OutputKind.HTML,),
    "dicom-seg": (OutputKind.DICOM_SEG,),
    "dicom-pmap": (OutputKind.DICOM_PMAP,),
    "slicer": (OutputKind.SLICER,),
    "dicom-sr": (OutputKind.DICOM_SEG, OutputKind.DICOM_SR),
}
_ALWAYS_WITH_FORMATS = (OutputKind.SLICES, OutputKind.LESIONS, OutputKind.PROVENANCE)


class OutputConfig(_Section):
    """What is written and where.

    ``formats`` is the short form (``[nifti, dicom-seg, slicer, png, html]``); ``outputs`` lists
    files one by one. Give one of them; ``formats`` is turned into ``outputs`` when the file is read
    (the validated section has ``formats: None``).
    """

    dir: str | None = None
    formats: tuple[str, ...] | None = None
    outputs: tuple[OutputKind, ...] = DEFAULT_OUTPUTS
    keep_empty_frames: bool = False
    threshold: ThresholdRule = ThresholdRule()
    study_score: StudyScoreRule = StudyScoreRule()
    overlay_slices: int = Field(default=6, ge=1, le=32)
    show_ids: bool = False
    flag: FlagRule | None = None
    heatmap_dtype: Literal["uint16", "float32"] = "uint16"  # uint16: scaled ints, readers get [0, 1] floats
    #: mask.nii.gz holds lesion ids (1..n, the rows of lesions.csv; 0 background) or a 0/1 mask
    mask_values: Literal["labels", "binary"] = "labels"
    # NIfTI heat map and mask: "fast" (ISA-L gzip) or a zlib gzip level 0..9
    compression: Literal["fast"] | Annotated[int, Field(ge=0, le=9)] = "fast"
    push: PushConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _formats(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("formats") is None:
            return data
        data = dict(data)
        formats = data["formats"]
        if isinstance(formats, str) or not isinstance(formats, (list, tuple)):
            raise ValueError(f"output.formats must be a list, e.g. [nifti, png] (got {formats!r})")
        unknown = [f for f in formats if f not in FORMAT_OUTPUTS]
        if unknown:
            close = [difflib.get_close_matches(str(f), list(FORMAT_OUTPUTS), n=1) for f in unknown]
            hint = "".join(f"; did you mean {c[0]!r} for {f!r}?" for f, c in zip(unknown, close) if c)
            raise ValueError(f"unknown output format(s) {unknown}; known: {sorted(FORMAT_OUTPUTS)}{hint}")
        kinds = list(_ALWAYS_WITH_FORMATS)
        for f in formats:
            kinds += [k for k in FORMAT_OUTPUTS[f] if k not in kinds]
        if "outputs" in data and _kind_values(data["outputs"]) != [k.value for k in kinds]:
            raise ValueError("give either output.formats or output.outputs, not both")
        # one canonical form: formats is the short spelling of outputs and is not kept, so equal
        # settings hash equal (a study hash must not depend on which spelling a file used)
        data["outputs"] = tuple(kinds)
        data["formats"] = None
        return data

    @model_validator(mode="after")
    def _sr_needs_seg(self) -> OutputConfig:
        if OutputKind.DICOM_SR in self.outputs and OutputKind.DICOM_SEG not in self.outputs:
            raise ValueError("output dicom-sr references the DICOM SEG: add dicom-seg to output.outputs")
        return self


def _kind_values(outputs: Any) -> list[str] | None:
    """``outputs`` as a list of their string values (``None`` if it is not a list)."""
    if not isinstance(outputs, (list, tuple)):
        return None
    return [o.value if isinstance(o, OutputKind) else str(o) for o in outputs]
