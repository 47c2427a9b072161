"""The typed summary of the series a study was read from (provenance, tables, logs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

__all__ = ["SeriesSummary"]


@dataclass(frozen=True)
class SeriesSummary:
    """Which series of a study was analysed, and why.

    Attributes:
        series_uid: SeriesInstanceUID (DICOM) or the path-derived id of a volume file.
        description: SeriesDescription (``""`` for a volume file).
        modality: Modality from the header (``""`` when unknown, e.g. NIfTI).
        body_part: BodyPartExamined (``""`` when absent).
        instances: Number of files read.
        preset: Name of the preprocessing preset used (chosen from the headers when ``auto``).
        why: Why this series was chosen (``""`` for a single file).
        candidates: Series in the study (1 for a single file).
        axis: Slice axis of the preset (set once the slices are cut).
    """

    series_uid: str
    description: str
    modality: str
    body_part: str
    instances: int
    preset: str
    why: str = ""
    candidates: int = 1
    axis: str = ""

    def with_axis(self, axis: str) -> SeriesSummary:
        """This summary with the slice axis recorded."""
        return replace(self, axis=axis)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)
