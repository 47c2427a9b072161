"""``inputs:``: where the studies are."""

from __future__ import annotations

from pydantic import model_validator

from medzsad.config._base import _Section
from medzsad.config.pacs import DicomWebInput, DimseInput


class InputsConfig(_Section):
    """Where the studies are.

    Attributes:
        paths: Files or folders (a DICOM folder, a PACS export, a NIfTI file or a folder of them).
        globs: Glob patterns (``**`` allowed) relative to the cohort file.
        manifest: CSV with columns ``study_id,path`` and optional ``label`` (0/1) and ``mask``.
        dicomweb: Studies pulled from a DICOMweb server (see :mod:`medzsad.pacs`).
        dimse: Studies pulled from a DICOM peer with C-FIND + C-GET.
    """

    paths: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    manifest: str | None = None
    dicomweb: DicomWebInput | None = None
    dimse: DimseInput | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> InputsConfig:
        if not (self.paths or self.globs or self.manifest or self.dicomweb or self.dimse):
            raise ValueError("give at least one of paths, globs, manifest, dicomweb or dimse")
        return self
